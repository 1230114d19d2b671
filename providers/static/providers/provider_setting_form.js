// Grey out "active" and "changeable" while future payments are not enabled (SPEC §5).
document.addEventListener("DOMContentLoaded", function () {
  var enable = document.getElementById("id_enable_future_payments");
  if (!enable) return;
  var dependents = ["id_future_payments_active", "id_future_payments_changeable"].map(function (id) {
    return document.getElementById(id);
  });
  function sync() {
    dependents.forEach(function (field) {
      if (!field) return;
      field.disabled = !enable.checked;
      field.closest(".form-row") && (field.closest(".form-row").style.opacity = enable.checked ? "1" : "0.5");
    });
  }
  enable.addEventListener("change", sync);
  document.querySelector("form") && document.querySelector("form").addEventListener("submit", function () {
    dependents.forEach(function (field) { if (field) field.disabled = false; });
  });
  sync();
});
