"""collab.permissions: the one answer to "may this user do this to this document?"."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission

from collab.permissions import Action, NotAllowed, NotFound, check, operator_may, role_may
from collab.services import document_create, member_add

pytestmark = pytest.mark.django_db

GRANTS = {
    "owner": set(Action),
    "editor": {Action.READ, Action.WRITE, Action.RESTORE, Action.EXPORT},
    "viewer": {Action.READ, Action.EXPORT},
    None: set(),
}


@pytest.mark.parametrize("role", list(GRANTS))
@pytest.mark.parametrize("action", list(Action))
def test_each_role_may_do_exactly_its_actions(role: str | None, action: Action) -> None:
    assert role_may(role, action) is (action in GRANTS[role])


def test_check_hides_documents_from_strangers_and_refuses_members_by_name() -> None:
    model = get_user_model()
    olga, vi, eve = (model.objects.create_user(username=n) for n in ("olga", "vi", "eve"))
    document = document_create(owner=olga, title="T")
    member_add(document=document, by=olga, user=vi, role="viewer")
    assert check(user=vi, document_id=document.id, action=Action.READ) == "viewer"
    with pytest.raises(NotAllowed, match="only the owner and editors"):
        check(user=vi, document_id=document.id, action=Action.WRITE)
    for who in (eve, AnonymousUser()):
        with pytest.raises(NotFound):
            check(user=who, document_id=document.id, action=Action.READ)
    with pytest.raises(NotFound):
        check(user=olga, document_id="not-a-uuid", action=Action.READ)
    vi.is_active = False
    vi.save()
    with pytest.raises(NotFound):
        check(user=vi, document_id=document.id, action=Action.READ)


def test_staff_act_as_operators_only_where_asked_and_by_their_permissions() -> None:
    model = get_user_model()
    olga = model.objects.create_user(username="olga")
    viewer_staff = model.objects.create_user(username="vs", is_staff=True)
    viewer_staff.user_permissions.add(Permission.objects.get(codename="view_document"))
    changer = model.objects.create_user(username="cs", is_staff=True)
    changer.user_permissions.add(Permission.objects.get(codename="change_document"))
    viewer_staff, changer = (model.objects.get(pk=u.pk) for u in (viewer_staff, changer))
    document = document_create(owner=olga, title="T")
    assert operator_may(viewer_staff, Action.READ) and not operator_may(
        viewer_staff, Action.RESTORE
    )
    assert operator_may(changer, Action.RESTORE) and not operator_may(changer, Action.SHARE)
    assert (
        check(user=changer, document_id=document.id, action=Action.RESTORE, operator=True) is None
    )
    with pytest.raises(NotAllowed):
        check(user=viewer_staff, document_id=document.id, action=Action.RESTORE, operator=True)
    with pytest.raises(NotFound):  # outside the admin, staff are strangers
        check(user=changer, document_id=document.id, action=Action.READ)
