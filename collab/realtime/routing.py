"""WebSocket URLs."""

from django.urls import path

from collab.realtime.consumer import DocumentConsumer
from collab.realtime.notifications import NotificationConsumer

websocket_urlpatterns = [
    path("ws/docs/<str:doc_id>", DocumentConsumer.as_asgi()),
    path("ws/notifications", NotificationConsumer.as_asgi()),
]
