"""Infrastructure as code: the AWS CDK (Python) app that deploys the fraud scoring system.

Imports none of the runtime packages: the stack refers to the code only through the
container images built from ``infra/docker``.
"""
