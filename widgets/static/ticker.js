// An invisible clock for ipywidgets views: every `interval_ms` it tells the kernel "tick", so a
// kernel-side view (the browser's thumbnails) can re-read the store when someone else changed it.
function render({ model, el }) {
  el.style.display = "none";
  let timer = null;
  const start = () => {
    clearInterval(timer);
    const ms = model.get("interval_ms");
    if (ms > 0) timer = setInterval(() => { if (!document.hidden) model.send({ cmd: "tick" }); }, ms);
  };
  model.on("change:interval_ms", start);
  start();
  return () => clearInterval(timer);
}
export default { render };
