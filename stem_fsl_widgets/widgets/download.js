// Downloader front end (anywidget ESM, no CDN): Python sends {filename, mime} plus the file's
// bytes as one binary buffer; the browser saves them through a temporary object URL.
function render({ model, el }) {
  el.classList.add("sfw-downloader");
  const onMsg = (msg, buffers) => {
    if (!msg || msg.event !== "download" || !buffers || !buffers.length) return;
    const b = buffers[0];
    const bytes = b instanceof ArrayBuffer ? b : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    const url = URL.createObjectURL(new Blob([bytes], { type: msg.mime || "application/octet-stream" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = msg.filename || "download";
    a.style.display = "none";
    el.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 60000);
    model.set("delivered", (model.get("delivered") || 0) + 1);
    model.save_changes();
  };
  model.on("msg:custom", onMsg);
  return () => model.off("msg:custom", onMsg);
}

export default { render };
