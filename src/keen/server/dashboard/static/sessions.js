// The sessions list's badges follow their sessions' status while any of them is active.
(function () {
  "use strict";
  const CLASS = {completed: "ok", failed: "bad", cancelled: "muted", running: "running"};
  const ACTIVE = new Set(["created", "running", "suspended"]);
  const badges = () => [...document.querySelectorAll(".badge[data-session]")];
  async function refresh() {
    if (!badges().some((b) => ACTIVE.has(b.dataset.status))) return;
    const response = await fetch("/sessions.json", {credentials: "same-origin"});
    if (response.ok) {
      const statuses = await response.json();
      for (const badge of badges()) {
        const status = statuses[badge.dataset.session];
        if (status && status !== badge.dataset.status) {
          badge.dataset.status = status;
          badge.textContent = status;
          badge.className = "badge " + (CLASS[status] || "pending");
        }
      }
    }
    setTimeout(refresh, 2000);
  }
  setTimeout(refresh, 2000);
})();
