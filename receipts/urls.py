from django.urls import path

from receipts import views

app_name = "receipts"
urlpatterns = [
    path("pay/<str:token>/receipt/", views.receipt_of_payment, name="of-payment"),
    path("receipts/<str:token>/", views.download, name="download"),
]
