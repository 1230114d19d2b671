from django.urls import path

from payments import views

app_name = "payments"
urlpatterns = [
    path("pay/<str:token>/", views.pay, name="pay"),
    path("pay/<str:token>/intent/", views.create_intent, name="create-intent"),
    path("pay/<str:token>/offline-test-payment/", views.offline_test_payment, name="offline-test-payment"),
    path("pay/<str:token>/return/", views.payment_return, name="return"),
    path("save-method/<str:token>/", views.save_method, name="save-method"),
    path("save-method/<str:token>/intent/", views.create_setup_intent, name="create-setup-intent"),
]
