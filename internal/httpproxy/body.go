package httpproxy

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"time"
)

// copyWindow bounds one splice/copy step so that the idle deadline can be
// pushed back between steps: a transfer stays alive while each window of
// 256 KiB moves within the timeout (a slow but steady one included), and a
// stalled one is cut.
const copyWindow = 256 << 10

// copyN moves exactly n bytes from src (its buffer first, then its
// connection) to dst. Bytes move connection to connection through
// net.TCPConn.ReadFrom, which splices on Linux. idle is the longest either side
// may stall.
func copyN(dst net.Conn, src *reader, n int64, idle time.Duration) (int64, error) {
	var done int64
	if b := src.buffered(); len(b) > 0 {
		if int64(len(b)) > n {
			b = b[:n]
		}
		m, err := dst.Write(b)
		src.discard(m)
		done += int64(m)
		if err != nil {
			return done, err
		}
	}
	for done < n {
		step := n - done
		if step > copyWindow {
			step = copyWindow
		}
		deadline := time.Now().Add(idle)
		src.conn.SetReadDeadline(deadline)
		dst.SetWriteDeadline(deadline)
		m, err := io.CopyN(dst, src.conn, step)
		done += m
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, err
		}
	}
	return done, nil
}

// chunkWriter frames what it is given as HTTP/1.1 chunks.
type chunkWriter struct {
	w   net.Conn
	hdr [24]byte
}

func (c *chunkWriter) writeChunk(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	h := strconv.AppendInt(c.hdr[:0], int64(len(p)), 16)
	h = append(h, '\r', '\n')
	bufs := net.Buffers{h, p, crlf}
	_, err := bufs.WriteTo(c.w)
	return err
}

var (
	crlf      = []byte("\r\n")
	lastChunk = []byte("0\r\n\r\n")
)

// parseChunkSize parses a chunk-size line (without its LF). Strict mode (for
// clients) demands CRLF and a well-formed extension; tolerant mode (for
// servers) accepts a bare LF and ignores what follows the size.
func parseChunkSize(line []byte, strict bool) (int64, error) {
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	} else if strict {
		return 0, ErrBadChunk
	}
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, ErrBadChunk // would overflow int64
		}
		n = n<<4 | int64(v)
	}
ext:
	if i == 0 {
		return 0, ErrBadChunk
	}
	rest := line[i:]
	if !strict {
		return n, nil
	}
	if len(rest) > 0 && !validChunkExt(rest) {
		return 0, ErrBadChunk
	}
	return n, nil
}

// validChunkExt checks chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )
// with value a token or quoted-string.
func validChunkExt(b []byte) bool {
	ws := func() {
		for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
			b = b[1:]
		}
	}
	token := func() bool {
		i := 0
		for i < len(b) && tchar[b[i]] {
			i++
		}
		b = b[i:]
		return i > 0
	}
	if len(b) == 0 {
		return true
	}
	for {
		// BWS is allowed only before a ";" that starts an extension.
		ws()
		if len(b) == 0 || b[0] != ';' {
			return false
		}
		b = b[1:]
		ws()
		if !token() {
			return false
		}
		ws()
		if len(b) == 0 {
			return true
		}
		if b[0] != '=' {
			continue
		}
		b = b[1:]
		ws()
		if len(b) > 0 && b[0] == '"' {
			b = b[1:]
			for {
				if len(b) == 0 {
					return false
				}
				c := b[0]
				b = b[1:]
				if c == '"' {
					break
				}
				if c == '\\' {
					if len(b) == 0 {
						return false
					}
					b = b[1:]
					continue
				}
				if c < 0x20 && c != '\t' || c == 0x7f {
					return false
				}
			}
		} else if !token() {
			return false
		}
		ws()
		if len(b) == 0 {
			return true
		}
	}
}

// copyChunked re-frames a chunked body from src to dst. With chunked false
// the decoded bytes are written raw (for an HTTP/1.0 client). Trailer fields
// are read and dropped. limit > 0 bounds the decoded size.
func copyChunked(dst net.Conn, src *reader, strict, chunked bool, limit int64, idle time.Duration) (int64, error) {
	cw := chunkWriter{w: dst}
	var total int64
	for {
		src.conn.SetReadDeadline(time.Now().Add(idle))
		line, err := src.readLine()
		if err != nil {
			return total, noEOF(err)
		}
		n, err := parseChunkSize(line, strict)
		if err != nil {
			if !strict {
				err = ErrRespBadChunk
			}
			return total, err
		}
		if n == 0 {
			break
		}
		if limit > 0 && total+n > limit {
			return total, ErrBodyTooLarge
		}
		if chunked {
			h := strconv.AppendInt(cw.hdr[:0], n, 16)
			h = append(h, '\r', '\n')
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, err := dst.Write(h); err != nil {
				return total, err
			}
		}
		m, err := copyN(dst, src, n, idle)
		total += m
		if err != nil {
			return total, err
		}
		if err := expectCRLF(src, strict); err != nil {
			return total, err
		}
		if chunked {
			if _, err := dst.Write(crlf); err != nil {
				return total, err
			}
		}
	}
	// Trailer section: fields until an empty line.
	for i := 0; ; i++ {
		line, err := src.readLine()
		if err != nil {
			return total, noEOF(err)
		}
		if strict && (len(line) == 0 || line[len(line)-1] != '\r') {
			return total, ErrBadChunk
		}
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			break
		}
		if strict && !validTrailerField(line[:len(line)-1]) {
			return total, ErrBadChunk
		}
		if i == maxHeaders {
			return total, ErrBadChunk
		}
	}
	if chunked {
		dst.SetWriteDeadline(time.Now().Add(idle))
		if _, err := dst.Write(lastChunk); err != nil {
			return total, err
		}
	}
	return total, nil
}

// expectCRLF consumes the line end after chunk data.
func expectCRLF(src *reader, strict bool) error {
	line, err := src.readLine()
	if err != nil {
		return noEOF(err)
	}
	switch {
	case len(line) == 1 && line[0] == '\r':
		return nil
	case len(line) == 0 && !strict:
		return nil
	}
	if strict {
		return ErrBadChunk
	}
	return ErrRespBadChunk
}

// copyToClose copies a close-delimited body, framing it as chunks when the
// client speaks HTTP/1.1.
func copyToClose(dst net.Conn, src *reader, chunked bool, idle time.Duration) (int64, error) {
	if !chunked {
		var total int64
		if b := src.buffered(); len(b) > 0 {
			n, err := dst.Write(b)
			src.discard(n)
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
		for {
			deadline := time.Now().Add(idle)
			src.conn.SetReadDeadline(deadline)
			dst.SetWriteDeadline(deadline)
			n, err := io.CopyN(dst, src.conn, copyWindow)
			total += n
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
		}
	}
	cw := chunkWriter{w: dst}
	var total int64
	buf := make([]byte, ioBuf)
	for {
		if b := src.buffered(); len(b) > 0 {
			if err := cw.writeChunk(b); err != nil {
				return total, err
			}
			total += int64(len(b))
			src.discard(len(b))
		}
		deadline := time.Now().Add(idle)
		src.conn.SetReadDeadline(deadline)
		dst.SetWriteDeadline(deadline)
		n, err := src.conn.Read(buf)
		if n > 0 {
			if err := cw.writeChunk(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if err == io.EOF {
			_, err = dst.Write(lastChunk)
			return total, err
		}
		if err != nil {
			return total, err
		}
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// validTrailerField checks one trailer line (without its CRLF) as a header
// field: a token name, a colon, a valid value; no folding.
func validTrailerField(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	return colon > 0 && isToken(line[:colon]) && validValue(line[colon+1:])
}
