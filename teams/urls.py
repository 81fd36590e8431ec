from django.urls import path

from teams import views

urlpatterns = [
    path("teams/<slug:slug>/", views.team_detail, name="team_detail"),
    path("teams/<slug:slug>/switch/", views.team_switch, name="team_switch"),
    path("teams/<slug:slug>/invites/", views.team_invite, name="team_invite"),
    path(
        "teams/<slug:slug>/invites/<int:invite_id>/revoke/",
        views.team_invite_revoke,
        name="team_invite_revoke",
    ),
    path(
        "teams/<slug:slug>/members/<int:user_id>/role/",
        views.team_member_role,
        name="team_member_role",
    ),
    path(
        "teams/<slug:slug>/members/<int:user_id>/remove/",
        views.team_member_remove_view,
        name="team_member_remove",
    ),
    path("teams/<slug:slug>/settings/", views.team_settings, name="team_settings"),
    path("teams/<slug:slug>/presets/new/", views.team_preset_edit, name="team_preset_new"),
    path(
        "teams/<slug:slug>/presets/<int:preset_id>/",
        views.team_preset_edit,
        name="team_preset_edit",
    ),
    path(
        "teams/<slug:slug>/presets/<int:preset_id>/delete/",
        views.team_preset_delete,
        name="team_preset_delete",
    ),
    path("teams/<slug:slug>/audit/", views.team_audit, name="team_audit"),
    path("audit/", views.audit_all, name="audit_all"),
    path("invites/<str:token>/", views.invite_accept, name="invite_accept"),
]
