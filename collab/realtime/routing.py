"""WebSocket URLs."""

from django.urls import path

from collab.realtime.consumer import DocumentConsumer

websocket_urlpatterns = [
    path("ws/docs/<str:doc_id>", DocumentConsumer.as_asgi()),
]
