#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` / ``cdk deploy`` run this. Without the CLI it writes to ./cdk.out."""

import os

from pipeline.app import build_app

app, _ = build_app(outdir=None if "CDK_OUTDIR" in os.environ else "cdk.out")
app.synth()
