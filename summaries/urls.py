from django.urls import path

from summaries import views

urlpatterns = [
    path("teams/<slug:slug>/summaries/", views.team_summaries, name="team_summaries"),
    path("teams/<slug:slug>/summaries/digest/", views.digest_update, name="summary_digest"),
    path("summaries/<int:job_id>/", views.job_detail, name="summary_job"),
    path("summaries/<int:job_id>/cancel/", views.job_cancel, name="summary_job_cancel"),
]
