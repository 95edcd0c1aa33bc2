"""The CLI's subcommands, one module per group. Each module has `register(subparsers, common)`; each command
function takes the parsed arguments and returns an exit code."""
