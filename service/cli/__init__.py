"""The `quanzu` command. Same environment as the API: DATABASE_URL, REDIS_URL (unset: embedded).

This is its table, in the order `quanzu --help` lists it; the commands live beside it by what
they are for: running quanzu (run), setting a center up (admin), the monthly report, the demo
and its simulators (simulation), the tier policy and the audit trail."""
from __future__ import annotations

import typer

from service.cli import access, admin, audit, imports, policy, report, run, simulation

app = typer.Typer(help="quanzu 劝阻: warning-and-dissuasion dispatch.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command("migrate")(run.migrate)
app.command("serve")(run.serve)
app.command("worker")(run.worker)
app.command("import-district")(admin.import_district)
app.command("create-user")(admin.create_user)
app.command("create-api-key")(admin.create_api_key)
app.command("update-user")(access.update_user)
app.command("api-keys")(access.list_api_keys)
app.command("revoke-api-key")(access.revoke_api_key)
app.command("import-leads")(imports.import_leads)
app.command("source-feedback")(imports.source_feedback)
app.command("field-sim")(simulation.field_sim)
app.command("gen-district")(simulation.gen_district)
app.command("demo")(simulation.demo)
app.command("simulate")(simulation.simulate)
app.command("report")(report.report)
app.command("purge")(audit.purge)

policy_app = typer.Typer(help="Check a tier policy file, or replay one over stored leads.", no_args_is_help=True)
policy_app.command("check")(policy.check_policy)
policy_app.command("replay")(policy.replay_policy)
app.add_typer(policy_app, name="policy")

audit_app = typer.Typer(help="The tamper-evident audit trail (lead_event, access_log).", no_args_is_help=True)
audit_app.command("verify")(audit.verify)
app.add_typer(audit_app, name="audit")
