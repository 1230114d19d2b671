// A Stripe.js test double for browser tests: same calls as Stripe.js v3's Payment Element flow,
// confirming against the fake Stripe server it is served from (publishable key + client secret).
(function () {
  "use strict";
  var API = new URL(document.currentScript.src).origin;
  window.Stripe = function (publishableKey) {
    var handlers = {};
    function confirm(kind, args) {
      var id = args.clientSecret.split("_secret_")[0];
      var method = document.getElementById("double-card").value;
      var body = "key=" + encodeURIComponent(publishableKey) + "&client_secret=" + encodeURIComponent(args.clientSecret) +
        "&payment_method=" + encodeURIComponent(method) + "&return_url=" + encodeURIComponent(args.confirmParams.return_url);
      return fetch(API + "/v1/" + kind + "/" + id + "/confirm", {
        method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: body
      }).then(function (response) { return response.json(); }).then(function (result) {
        if (result.error) return { error: result.error };
        var action = result.next_action;
        if (result.status === "requires_action" && action) {
          // Redirect methods (Alipay): Stripe.js sends the browser to the provider's page, which returns to return_url.
          var redirect = action.redirect_to_url || action.alipay_handle_redirect;
          if (redirect && redirect.url) { window.location = redirect.url; return {}; }
        }
        var param = kind === "payment_intents" ? "payment_intent" : "setup_intent";
        window.location = args.confirmParams.return_url + "?" + param + "=" + id + "&redirect_status=" + result.status;
        return {};
      });
    }
    return {
      elements: function (options) {
        return {
          create: function () {
            return {
              mount: function (selector) {
                var root = document.querySelector(selector);
                var types = options.paymentMethodTypes || ["card"];
                root.innerHTML = '<label for="double-type">Method</label> <select id="double-type">' +
                  types.map(function (t) { return '<option value="' + t + '">' + t + "</option>"; }).join("") +
                  '</select> <label for="double-card">Test payment method</label> <input id="double-card" value="pm_card_visa">';
                root.querySelector("select").addEventListener("change", function (event) {
                  if (handlers.change) handlers.change({ value: { type: event.target.value } });
                });
              },
              on: function (name, handler) { handlers[name] = handler; }
            };
          },
          submit: function () { return Promise.resolve({}); },
          update: function (changes) { Object.assign(options, changes); window.__stripeDoubleOptions = options; }
        };
      },
      confirmPayment: function (args) { return confirm("payment_intents", args); },
      confirmSetup: function (args) { return confirm("setup_intents", args); }
    };
  };
})();
