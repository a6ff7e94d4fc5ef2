// The estimate beside the start form: the budget × the markup, as the budget changes.
(function () {
  "use strict";
  const form = document.getElementById("new-session");
  if (!form) return;
  const markup = parseFloat(form.dataset.markup);
  const budget = document.getElementById("budget");
  const out = document.getElementById("estimate-credits");
  const update = () => { out.textContent = ((parseFloat(budget.value) || 0) * markup).toFixed(2); };
  budget.addEventListener("input", update);
  update();
})();
