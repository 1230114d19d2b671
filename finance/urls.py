from django.urls import path

from finance.views import dashboard

app_name = "finance"
urlpatterns = [path("", dashboard, name="dashboard")]
