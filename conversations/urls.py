from django.urls import path

from conversations import attachment_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.conversation_search, name="conversation_search"),
    path("c/new/", views.conversation_create, name="conversation_create"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation_detail"),
    path("c/<uuid:conversation_id>/rename/", views.conversation_rename, name="conversation_rename"),
    path("c/<uuid:conversation_id>/pin/", views.conversation_pin, name="conversation_pin"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete, name="conversation_delete"),
    path("c/<uuid:conversation_id>/share/", views.conversation_share, name="conversation_share"),
    path(
        "c/<uuid:conversation_id>/continue/",
        views.conversation_continue,
        name="conversation_continue",
    ),
    path(
        "c/<uuid:conversation_id>/settings/",
        views.conversation_settings,
        name="conversation_settings",
    ),
    path(
        "c/<uuid:conversation_id>/export.json",
        views.conversation_export_json,
        name="conversation_export_json",
    ),
    path(
        "c/<uuid:conversation_id>/export.md",
        views.conversation_export_markdown,
        name="conversation_export_markdown",
    ),
    path("import/", views.conversation_import, name="conversation_import"),
    path(
        "c/<uuid:conversation_id>/estimate/",
        views.conversation_estimate,
        name="conversation_estimate",
    ),
    path(
        "c/<uuid:conversation_id>/attachments/",
        attachment_views.attachment_upload,
        name="attachment_upload",
    ),
    path(
        "attachments/<uuid:attachment_id>/",
        attachment_views.attachment_detail,
        name="attachment_detail",
    ),
    path(
        "attachments/<uuid:attachment_id>/file",
        attachment_views.attachment_file,
        name="attachment_file",
    ),
    path(
        "attachments/<uuid:attachment_id>/thumbnail",
        attachment_views.attachment_thumbnail,
        name="attachment_thumbnail",
    ),
]
