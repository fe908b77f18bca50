"""Browser pages."""

from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.document_list_page, name="home"),
    path("docs/<uuid:doc_id>", views.editor_page, name="editor"),
]
