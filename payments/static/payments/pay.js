// Stripe Payment Element in deferred-intent mode: the server creates the intent only on submit.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("payment-config").textContent);
  var form = document.getElementById("payment-form");
  var submit = document.getElementById("submit");
  var errorBox = document.getElementById("payment-error");
  var saveBox = document.getElementById("save-for-future");
  var stripe = Stripe(config.publishableKey, { locale: config.locale });
  var setup = config.mode === "setup";

  // The payment page carries no CSRF token: it is read from Django's CSRF cookie, as Django documents for scripts
  // (payments/rendered_pages.py). Pages that must carry one (saving a method, deployments with an HttpOnly cookie)
  // have it in #csrf.
  function csrfToken() {
    var field = document.getElementById("csrf");
    if (field) return field.value;
    var prefix = (config.csrfCookieName || "csrftoken") + "=";
    var cookies = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < cookies.length; i++) {
      if (cookies[i].indexOf(prefix) === 0) return decodeURIComponent(cookies[i].slice(prefix.length));
    }
    return "";
  }
  var options = setup
    ? { mode: "setup", currency: "eur", paymentMethodTypes: config.paymentMethodTypes }
    : { mode: "payment", amount: config.amount, currency: config.currency, paymentMethodTypes: config.paymentMethodTypes };
  if (!setup && saveBox && saveBox.checked) options.setupFutureUsage = "off_session";
  var elements = stripe.elements(options);
  var paymentElement = elements.create("payment");
  var methodType = config.paymentMethodTypes[0];
  var futureRow = document.getElementById("future-row");
  var mandateText = document.getElementById("mandate-text");
  // Only cards and SEPA debits can be saved (Stripe cannot save Alipay): for any other method the option disappears.
  function canSave() { return methodType === "card" || methodType === "sepa_debit"; }
  function showFutureOption() {
    if (futureRow) futureRow.hidden = !canSave();
    if (mandateText) mandateText.hidden = !canSave();
    if (saveBox) elements.update({ setupFutureUsage: canSave() && saveBox.checked ? "off_session" : null });
  }
  paymentElement.on("change", function (event) {
    if (event.value && event.value.type) { methodType = event.value.type; showFutureOption(); }
  });
  paymentElement.mount("#payment-element");
  if (saveBox) saveBox.addEventListener("change", showFutureOption);
  showFutureOption();

  function showError(message) {
    errorBox.textContent = message;
    submit.disabled = false;
    errorBox.focus && errorBox.setAttribute("tabindex", "-1");
    errorBox.focus && errorBox.focus();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (submit.disabled) return;  // no double submit
    submit.disabled = true;
    errorBox.textContent = "";
    elements.submit().then(function (result) {
      if (result.error) { showError(result.error.message); return; }
      return fetch(config.intentUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ method_type: methodType, save_for_future: !!(saveBox && saveBox.checked && canSave()) }),
        credentials: "same-origin"
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (answer) {
        if (!answer.ok) { showError(answer.body.error || "The payment could not be started."); return; }
        var confirm = setup ? stripe.confirmSetup : stripe.confirmPayment;
        return confirm.call(stripe, { elements: elements, clientSecret: answer.body.clientSecret,
                                      confirmParams: { return_url: config.returnUrl } })
          .then(function (outcome) { if (outcome && outcome.error) showError(outcome.error.message); });
      });
    }).catch(function () { showError("Network error. Please try again."); });
  });
})();
