"""URLs of the page benchmark's baseline (used with override_settings(ROOT_URLCONF=...))."""

from django.urls import include, path

from bench.baseline import baseline_page

urlpatterns = [
    path("bench/baseline-page/<int:size>/", baseline_page),
    path("", include("config.urls")),
]
