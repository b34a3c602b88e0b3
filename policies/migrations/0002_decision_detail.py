"""Move each decision's explanation to a shared, content-addressed DecisionDetail.

Existing rows keep what they said: each row's context, policies, facts and
reason become a detail (one per distinct explanation) that the row points to.
"""

import hashlib
import json

import django.db.models.deletion
from django.db import migrations, models


def _digest(context, policies, facts, reason):
    digest = hashlib.sha256()
    for part in (context, policies, facts, reason):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def move_details(apps, schema_editor):
    PolicyDecision = apps.get_model("policies", "PolicyDecision")
    DecisionDetail = apps.get_model("policies", "DecisionDetail")
    known = set(DecisionDetail.objects.values_list("digest", flat=True))
    for row in PolicyDecision.objects.order_by("id").iterator(chunk_size=2000):
        parts = [json.dumps(row.context, sort_keys=True), json.dumps(row.policies), json.dumps(row.facts, sort_keys=True)]
        digest = _digest(*parts, row.reason)
        if digest not in known:
            DecisionDetail.objects.create(
                digest=digest, context=row.context, policies=row.policies, facts=row.facts, reason=row.reason
            )
            known.add(digest)
        PolicyDecision.objects.filter(pk=row.pk).update(detail_id=digest)


class Migration(migrations.Migration):

    dependencies = [
        ("policies", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="DecisionDetail",
            fields=[
                ("digest", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("context", models.JSONField(blank=True, default=dict)),
                ("policies", models.JSONField(blank=True, default=list, help_text="The deciding policies (@id).")),
                ("facts", models.JSONField(blank=True, default=dict, help_text="The facts that triggered them.")),
                ("reason", models.TextField()),
            ],
        ),
        migrations.AddField(
            model_name="policydecision",
            name="detail",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="decisions",
                to="policies.decisiondetail",
            ),
        ),
        migrations.RunPython(move_details, migrations.RunPython.noop),
        migrations.RemoveField(model_name="policydecision", name="context"),
        migrations.RemoveField(model_name="policydecision", name="facts"),
        migrations.RemoveField(model_name="policydecision", name="policies"),
        migrations.RemoveField(model_name="policydecision", name="reason"),
        migrations.AlterField(
            model_name="policydecision",
            name="detail",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="decisions",
                to="policies.decisiondetail",
            ),
        ),
    ]
