"""Payment writes, one module per concern:

- transactions: one PaymentTransaction per Stripe charge, its state machine and the payment balances
- disputes: locking and adjustment balances for charge disputes
- checkout: PaymentIntents for the hosted page and their attempts
- instruments: Stripe customers and saved payment methods
- collection: off-session collection of due invoices and payment-link emails
"""
