"""Docker compose files read without Docker: `project` loads them the way `docker compose
config` does (merge, include, extends, anchors, profiles, interpolation) and keeps where
every service, image and build was written; `lint` judges them for production."""
