FROM python:3.11-slim
# LightGBM's wheel links the OpenMP runtime, which the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
# A normal (non-editable) install, pinned by the lock: the image runs the package, not the
# source tree, exactly as `pip install .` on any machine would.
WORKDIR /build
COPY pyproject.toml setup.py README.md requirements.lock ./
COPY app app
COPY schema schema
COPY resolvers resolvers
COPY jobs jobs
COPY alembic alembic
RUN pip install --no-cache-dir -c requirements.lock . && rm -rf /build
WORKDIR /srv
ENV DATA_DIR=/data
VOLUME /data
EXPOSE 8000
CMD ["terrafusion", "serve", "--host", "0.0.0.0", "--no-worker", "--no-demo"]
