"""Reading a destination back: what arrived, per producer run id and seq (`ingest verify`)."""

from ingest.verify.verify import RunResult, VerifyError, VerifyResult, verify_destination

__all__ = ["RunResult", "VerifyError", "VerifyResult", "verify_destination"]
