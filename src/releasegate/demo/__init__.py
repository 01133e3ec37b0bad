"""The demo: a sample web app and a workspace with a staging and a prod stack."""
