// actions.js: operator actions on a server, each behind a confirmation
// dialog.
import { api, enc, h, toast } from "./dom.js";

const verbs = {
  drain: "Drain {s}? It takes no new clients; clients pinned to it keep coming.",
  disable: "Disable {s}? It takes no traffic at all, pinned clients included.",
  enable: "Enable {s}? It takes traffic again.",
  rehash: "Re-learn the reference hash of {s}? Its next good reply becomes the reference.",
  weight: "Set the weight of {s}.",
};

// confirmDialog shows the dialog and resolves to true (confirmed) or false;
// with withWeight it also asks for a weight and resolves to the number.
export function confirmDialog(text, withWeight = false, weight = 1) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const label = document.getElementById("confirm-weight-label");
  const input = document.getElementById("confirm-weight");
  label.hidden = !withWeight;
  input.value = String(weight);
  dlg.returnValue = "";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      if (dlg.returnValue !== "ok") return resolve(false);
      resolve(withWeight ? Number(input.value) : true);
    }, { once: true });
    dlg.showModal();
    (withWeight ? input : document.getElementById("confirm-ok")).focus();
  });
}

// act asks for confirmation, then calls the API; it returns the server as
// the API answered it, or null when cancelled or refused.
export async function act(action, poolName, server, currentWeight) {
  const who = `${poolName}/${server}`;
  const answer = await confirmDialog(verbs[action].replace("{s}", who), action === "weight", currentWeight);
  if (answer === false) return null;
  const path = `/api/v1/pools/${enc(poolName)}/servers/${enc(server)}/${action}`;
  try {
    const sv = await api("POST", path, action === "weight" ? { weight: answer } : undefined);
    toast(action === "weight" ? `${who}: weight ${sv.weight}` : `${who}: ${action} done, now ${sv.state}`);
    return sv;
  } catch (e) {
    toast(`${who}: ${e.message}`, true);
    return null;
  }
}

// actionButtons returns the buttons for a server; weight() is its current
// weight, onDone runs after an action succeeded.
export function actionButtons(poolName, server, weight, onDone) {
  const b = (action, label) => h("button", {
    type: "button", "data-action": action, title: label,
    onclick: async () => { if (await act(action, poolName, server, weight())) onDone?.(); },
  }, label);
  return [b("drain", "drain"), b("disable", "disable"), b("enable", "enable"), b("weight", "weight…"), b("rehash", "re-learn hash")];
}
