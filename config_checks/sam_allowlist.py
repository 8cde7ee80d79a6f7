"""Print the samconfig keys SAM CLI accepts, per command, as JSON. Runs in SAM's own tool environment:

.state/tools/sam/bin/python config_checks/sam_allowlist.py > config_checks/sam_allowlist.json
"""

import importlib
import json

from samcli import __version__

# The commands a samconfig.toml of this project may configure (key: samconfig section, value: click module).
COMMANDS = {
    "validate": "samcli.commands.validate.validate",
    "build": "samcli.commands.build.command",
    "local_invoke": "samcli.commands.local.invoke.cli",
    "local_start_api": "samcli.commands.local.start_api.cli",
    "local_start_lambda": "samcli.commands.local.start_lambda.cli",
    "deploy": "samcli.commands.deploy.command",
    "sync": "samcli.commands.sync.command",
    "package": "samcli.commands.package.command",
    "delete": "samcli.commands.delete.command",
    "logs": "samcli.commands.logs.command",
}
# Options that only make sense on the command line.
NOT_CONFIG = {"config_env", "config_file", "save_params", "None"}

commands = {}
for section, module in COMMANDS.items():
    cli = importlib.import_module(module).cli
    commands[section] = sorted({str(p.name) for p in cli.params} - NOT_CONFIG)
print(json.dumps({"sam_version": __version__, "commands": commands}, indent=1, sort_keys=True))
