// The rules author's messages and confirmations: a message stays until its reader dismisses
// it (a later one never hides an earlier one), and a change that alters what serves asks
// first, in a dialog that the keyboard drives (Enter confirms, Escape cancels).
import { $, el } from "/static/common.js";

// Show a message until dismissed; the newest comes first.
export function say(text, isError = false) {
  const note = el("div", null, isError ? "note error" : "note ok");
  note.setAttribute("role", isError ? "alert" : "status");
  const close = el("button", "×", "dismiss");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss this message");
  close.addEventListener("click", () => {
    const next = note.nextElementSibling || note.previousElementSibling;
    note.remove();
    if (next) next.querySelector("button.dismiss").focus();
  });
  note.append(el("span", text, "text"), close);
  $("message").prepend(note);
}

// Ask before acting. Resolves to null when cancelled, else to the reason typed ("" when no
// reason was asked for). `reason`: ask for one; `required`: refuse to confirm without it.
export function confirmAction({ title, text, action, reason = false, required = false }) {
  const dialog = $("confirm");
  const form = $("confirm-form");
  const input = $("confirm-reason");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = action;
  $("confirm-reason-label").hidden = !reason;
  input.value = "";
  input.required = reason && required;
  return new Promise((resolve) => {
    const finish = (value) => {
      form.removeEventListener("submit", submit);
      $("confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("close", cancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const submit = (event) => {
      event.preventDefault();
      if (input.required && !input.value.trim()) {
        input.setCustomValidity("Say why.");
        input.reportValidity();
        return;
      }
      finish(input.value.trim());
    };
    input.oninput = () => input.setCustomValidity("");
    const cancel = () => finish(null);
    form.addEventListener("submit", submit);
    $("confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("close", cancel); // Escape closes the dialog
    dialog.showModal();
    (reason ? input : $("confirm-ok")).focus();
  });
}
