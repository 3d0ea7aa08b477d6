"""One module per `seqbench` subcommand; each exposes `command`."""
