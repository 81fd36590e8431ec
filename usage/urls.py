from django.urls import path

from usage import views

urlpatterns = [
    path("usage/", views.my_usage, name="my_usage"),
    path("usage/team/<slug:slug>/budget/", views.team_budget, name="team_budget"),
]
