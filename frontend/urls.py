"""Browser pages."""

from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.document_list_page, name="home"),
    path("docs/new", views.document_create_view, name="document-create"),
    path("docs/<uuid:doc_id>", views.editor_page, name="editor"),
    path("docs/<uuid:doc_id>/rename", views.document_rename_view, name="document-rename"),
    path("docs/<uuid:doc_id>/members", views.member_add_view, name="member-add"),
    path(
        "docs/<uuid:doc_id>/members/<str:username>/remove",
        views.member_remove_view,
        name="member-remove",
    ),
    path("tokens", views.tokens_page, name="tokens"),
    path("tokens/<int:token_id>/revoke", views.token_revoke_view, name="token-revoke"),
]
