"""End-to-end tests of the SSH transport against the SSH lab (scripts/lab/ssh.sh up)."""
