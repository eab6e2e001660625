// BrowserId front end: a random id kept in this browser's local storage, so two people (or two
// browsers) on one server account get their own autosaves. Not a secret, not a login.
function render({ model, el }) {
  let id = "";
  try {
    id = window.localStorage.getItem("sfw-browser-id") || "";
    if (!id) {
      id = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
        : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
      window.localStorage.setItem("sfw-browser-id", id);
    }
  } catch (e) {
    id = ""; // storage blocked: the server falls back to the account's user
  }
  if (id && model.get("browser_id") !== id) {
    model.set("browser_id", id);
    model.save_changes();
  }
  el.style.display = "none";
}

export default { render };
