package balance

// HashString hashes s into a pick key for the hash algorithms. The hash is
// fixed (unseeded) so every process and every restart maps a key to the same
// server; it spreads keys well but is not collision resistant: never use it
// for tokens or anything an attacker must not forge.
func HashString(s string) uint64 { return hash(s) }

// HashBytes is HashString for a byte slice; HashBytes(b) ==
// HashString(string(b)).
func HashBytes(b []byte) uint64 { return hash(b) }

const (
	prime1 = 0x9e3779b97f4a7c15 // 2^64 / golden ratio
	prime2 = 0xc2b2ae3d27d4eb4f
)

// hash consumes eight bytes per round (multiply, rotate, multiply), folds the
// tail into one last word and finishes with mix. It reads words byte by byte
// so it works on strings and slices alike; the compiler fuses the loads.
func hash[T string | []byte](s T) uint64 {
	h := prime2 + uint64(len(s))*prime1
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		h = round(h, w)
	}
	if i < len(s) {
		var w uint64
		for j := len(s) - 1; j >= i; j-- {
			w = w<<8 | uint64(s[j])
		}
		h = round(h, w)
	}
	return mix(h)
}

func round(h, w uint64) uint64 {
	h ^= w * prime2
	h = h<<31 | h>>33
	return h * prime1
}

// mix is a 64-bit finalizer (xor-shift-multiply): every input bit affects
// every output bit, so even sequential keys spread over the ring.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
