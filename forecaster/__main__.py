"""Entry point: `python -m forecaster [overrides]` (and the `forecaster` console script).

A thin wrapper around forecaster.cli, whose imports (Hydra, OmegaConf) take a while: Ctrl-C or
SIGTERM before the chosen mode runs ends in one line and exit 130 / 143, not a traceback.
"""

from __future__ import annotations


def main() -> None:
    from forecaster.interrupts import exit_interrupted, hold_signals, interrupt_on_sigterm

    try:
        interrupt_on_sigterm()
        # held until Hydra has composed the config (forecaster.start_signals.ReleaseSignals): importing
        # Hydra already builds OmegaConf nodes, which a KeyboardInterrupt can leave half-made
        hold_signals()
        from forecaster import cli

        cli.main()
    except KeyboardInterrupt as exc:
        exit_interrupted(exc, "during start-up", "; nothing was recorded", at_once=True)


if __name__ == "__main__":
    main()
