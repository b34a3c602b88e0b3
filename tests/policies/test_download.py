"""Dataset download (dataset.read) is decided by the policy engine."""

from __future__ import annotations

from typing import Any

import pytest

from governance.services import (
    do_open_dataset_version,
    do_revoke_dataset_version,
    do_update_dataset,
)
from pedigree.errors import Conflict, InvalidInput, PermissionDenied
from policies.decision_log import decision_log
from policies.models import PolicyDecision

pytestmark = pytest.mark.django_db


def test_the_steward_may_download(alice: Any, claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    do_open_dataset_version(actor=alice, version=version).close()
    decision_log.flush()
    row = PolicyDecision.objects.get()
    assert (row.principal, row.action, row.outcome, row.policies) == ("User::alice", "dataset.read", "allow", ["dataset-read"])


def test_a_teammate_may_download(erin: Any, claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    do_open_dataset_version(actor=erin, version=version).close()


def test_an_outsider_is_refused_with_the_policys_reason(mallory: Any, claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    with pytest.raises(PermissionDenied) as caught:
        do_open_dataset_version(actor=mallory, version=version)
    assert "only admins, its steward (alice) and members of claims-team may read it" in caught.value.message


def test_the_steward_may_not_download_a_revoked_version(alice: Any, claims_dataset: Any, make_version: Any) -> None:
    version = do_revoke_dataset_version(actor=alice, version=make_version(claims_dataset), reason="consent withdrawn")
    with pytest.raises(Conflict) as caught:
        do_open_dataset_version(actor=alice, version=version)
    assert "quarantined" in caught.value.message


def test_an_admin_may_still_read_a_revoked_version(root: Any, alice: Any, claims_dataset: Any, make_version: Any) -> None:
    version = do_revoke_dataset_version(actor=alice, version=make_version(claims_dataset), reason="consent withdrawn")
    do_open_dataset_version(actor=root, version=version).close()


def test_an_ownership_change_through_the_service_is_seen_at_once_and_the_old_team_loses_access(
    mallory: Any, support_team: Any, alice: Any, erin: Any, root: Any, claims_dataset: Any, make_version: Any
) -> None:
    version = make_version(claims_dataset)
    with pytest.raises(PermissionDenied):
        do_open_dataset_version(actor=mallory, version=version)
    do_open_dataset_version(actor=erin, version=version).close()  # decided (and cached, where it can be) before
    with pytest.raises(PermissionDenied):  # the steward alone may not give the data away
        do_update_dataset(actor=alice, dataset=claims_dataset, changes={"owner_group": support_team}, reason="moved")
    with pytest.raises(InvalidInput):  # nor may anyone leave alice behind as steward: she would keep access
        do_update_dataset(actor=root, dataset=claims_dataset, changes={"owner_group": support_team}, reason="moved")
    do_update_dataset(
        actor=root,
        dataset=claims_dataset,
        changes={"owner_group": support_team, "steward": mallory},
        reason="support runs the claims line now",
    )
    version.refresh_from_db()
    do_open_dataset_version(actor=mallory, version=version).close()
    for old_team in (alice, erin):
        with pytest.raises(PermissionDenied):
            do_open_dataset_version(actor=old_team, version=version)
