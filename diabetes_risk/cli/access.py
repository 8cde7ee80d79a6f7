"""`diabetes-risk token`: an access token for the prediction API, as a clinic system would get one."""

from __future__ import annotations

import typer
from botocore.exceptions import BotoCoreError, ClientError

from diabetes_risk.cli.common import err, require_up, settings_from


def register(app: typer.Typer) -> None:
    app.command("token")(token)


def token(
    client: str = typer.Option("clinic-demo", "--client", help="The client system (a registered name)."),
    scope: list[str] = typer.Option(
        ["predict"], "--scope", help="Scope(s) to grant: predict, model:read (repeat the option for several)."
    ),
    ttl: int = typer.Option(3600, "--ttl", min=60, max=86400, help="Lifetime in seconds (local issuer only)."),
    target: str = typer.Option("local", help="'local' (the local cloud's issuer) or 'aws' (the stack's Cognito)."),
) -> None:
    """Print an OAuth client-credentials access token (JWT) for the prediction API on stdout.

    Send it as `Authorization: Bearer <token>`: curl -H "Authorization: Bearer $(diabetes-risk token)" ...

    On AWS it asks the stack's Cognito token endpoint with the app client's secret (your AWS credentials \
must be allowed to read it)."""
    from auth.tokens import SCOPES
    from diabetes_risk.access import TokenError, cognito_token, local_token

    unknown = [s for s in scope if s not in SCOPES]
    if unknown:
        err.print(f"[red]unknown scope {', '.join(unknown)}[/red]: choose from {', '.join(SCOPES)}")
        raise typer.Exit(2)
    if target not in ("local", "aws"):
        err.print(f"[red]unknown target {target!r}[/red]: choose 'local' or 'aws'")
        raise typer.Exit(2)
    try:
        if target == "aws":
            import boto3

            cfn = boto3.client("cloudformation")
            from diabetes_risk.deploy import STACK

            stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            value = cognito_token(outputs, client, scope)
        else:
            cloud = settings_from(None, None)
            require_up(cloud)
            value = local_token(cloud, client, scope, ttl)
    except TokenError as exc:
        err.print(f"[red]no token:[/red] {exc}")
        raise typer.Exit(1) from exc
    except (BotoCoreError, ClientError) as exc:  # AWS: no credentials, no stack, no access to the client secret
        err.print(f"[red]no token:[/red] AWS refused: {exc}")
        raise typer.Exit(1) from exc
    typer.echo(value)
