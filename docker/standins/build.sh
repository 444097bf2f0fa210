#!/usr/bin/env bash
# Stand-ins for the two AWS images the tests need and these machines cannot pull, built from Debian trixie
# (Python 3.13) and tagged with the AWS names, so that the kit's production code path is the one tested:
#
#   public.ecr.aws/sam/build-python3.13  the CDK's bundling image: bash, python and pip on PATH, `python -m venv`,
#                                        rsync, and this machine's CA bundle trusted (what PythonLayerVersion's
#                                        Dockerfile and bundling command use)
#   public.ecr.aws/lambda/python:3.13    the Lambda base image: /lambda-entrypoint.sh, which execs
#                                        /var/runtime/bootstrap (awslambdaric) when AWS_LAMBDA_RUNTIME_API is set;
#                                        /var/task as working folder; the handler as command; also tagged with
#                                        this machine's architecture, as AWS tags it (3.13-x86_64, 3.13-arm64),
#                                        the tag AWS SAM CLI builds from; /var/runtime holds the AWS SDK the
#                                        runtime provides, at the versions the kit pins (layerkit/core/targets.py)
#
# Like the AWS images, Python lives under /var/lang (a venv, so that pip can upgrade itself there). Unlike them,
# the system is Debian's (glibc 2.41, where Amazon Linux 2023 has 2.34): a _manylinux module (PEP 600) makes
# pip accept wheels up to manylinux_2_34 only, as on Amazon Linux 2023. There is no Runtime Interface Emulator.
#
# Idempotent: images already in the engine are kept. LAYERKIT_REBUILD_STANDINS=1 builds them again.
# Needs root, debootstrap, a Docker engine and the Debian mirror (DEBIAN_MIRROR, default deb.debian.org).
set -euo pipefail

BUILD_IMAGE=public.ecr.aws/sam/build-python3.13
LAMBDA_IMAGE=public.ecr.aws/lambda/python:3.13
case "$(uname -m)" in aarch64|arm64) ARCH=arm64 ;; *) ARCH=x86_64 ;; esac
LAMBDA_ARCH_IMAGE=$LAMBDA_IMAGE-$ARCH
AWSLAMBDARIC=awslambdaric==4.2.2
# The stand-ins' layout; a change rebuilds them in an engine that has an older one.
STANDIN_REVISION=2
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "$0")" && pwd)
RUNTIME_SDK=$(PYTHONPATH="$HERE/../.." "${PYTHON:-python3}" -c \
    'from layerkit.core.targets import RUNTIME_SDK; print(" ".join(f"{n}=={v}" for n, v in RUNTIME_SDK["python3.13"].items()))')
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
PATH_IN_IMAGE=/var/lang/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

revision() { docker image inspect --format '{{index .Config.Labels "layerkit.standin"}}' "$1" 2>/dev/null || true; }
if [ "${LAYERKIT_REBUILD_STANDINS:-0}" != 1 ] && [ "$(revision "$BUILD_IMAGE")" = "$STANDIN_REVISION" ] \
        && [ "$(revision "$LAMBDA_IMAGE")" = "$STANDIN_REVISION" ]; then
    docker image inspect "$LAMBDA_ARCH_IMAGE" >/dev/null 2>&1 || docker tag "$LAMBDA_IMAGE" "$LAMBDA_ARCH_IMAGE"
    echo "standins: $BUILD_IMAGE and $LAMBDA_IMAGE are in the engine already (revision $STANDIN_REVISION)" >&2
    exit 0
fi

# Another engine of this machine that has them (make docker-engine runs two): copied, not built again.
for other in ${STANDINS_FROM:-unix:///run/layerkit-docker/docker.sock unix:///var/run/docker.sock}; do
    [ "$other" = "${DOCKER_HOST:-unix:///var/run/docker.sock}" ] && continue
    if [ "$(DOCKER_HOST=$other revision "$BUILD_IMAGE")" = "$STANDIN_REVISION" ] \
            && [ "$(DOCKER_HOST=$other revision "$LAMBDA_IMAGE")" = "$STANDIN_REVISION" ]; then
        echo "standins: copying $BUILD_IMAGE and $LAMBDA_IMAGE from the engine at $other" >&2
        DOCKER_HOST=$other docker save "$BUILD_IMAGE" "$LAMBDA_IMAGE" | docker load >/dev/null
        docker tag "$LAMBDA_IMAGE" "$LAMBDA_ARCH_IMAGE"
        exit 0
    fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

echo "standins: debootstrap trixie (Python 3.13) from $MIRROR" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,rsync trixie "$rootfs" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
cp "$CA_BUNDLE" "$rootfs$CA_BUNDLE"   # this machine's bundle: the package index is reached through its CA here
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
inside() {  # a command in the rootfs, with none of this machine's environment (its pip settings included)
    chroot "$rootfs" env -i PATH="$PATH_IN_IMAGE" HOME=/root LANG=C.UTF-8 PIP_CERT="$CA_BUNDLE" \
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}
inside python3 -m venv /var/lang
site=$(inside /var/lang/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
cp "$HERE/_manylinux.py" "$rootfs$site/_manylinux.py"
inside /var/lang/bin/pip install --quiet --no-cache-dir --upgrade pip

common=(--change "LABEL layerkit.standin=$STANDIN_REVISION" --change "ENV PATH=$PATH_IN_IMAGE" --change "ENV LANG=C.UTF-8"
        --change "ENV PIP_CERT=$CA_BUNDLE" --change "ENV SSL_CERT_FILE=$CA_BUNDLE"
        --change "ENV REQUESTS_CA_BUNDLE=$CA_BUNDLE")

echo "standins: $BUILD_IMAGE" >&2
tar -C "$rootfs" -c . | docker import "${common[@]}" --change 'CMD ["bash"]' - "$BUILD_IMAGE" >/dev/null

echo "standins: $LAMBDA_IMAGE" >&2
# shellcheck disable=SC2086  # RUNTIME_SDK is a list of pins
inside /var/lang/bin/pip install --quiet --no-cache-dir --only-binary :all: --target /var/runtime "$AWSLAMBDARIC" \
    $RUNTIME_SDK
inside /var/lang/bin/python -m compileall -q /var/runtime >/dev/null
cp "$HERE/../../layerkit/invoke/bootstrap.py" "$rootfs/var/runtime/bootstrap.py"
install -m 0755 "$HERE/bootstrap" "$rootfs/var/runtime/bootstrap"
install -m 0755 "$HERE/lambda-entrypoint.sh" "$rootfs/lambda-entrypoint.sh"
mkdir -p "$rootfs/var/task" "$rootfs/opt"
tar -C "$rootfs" -c . | docker import "${common[@]}" \
    --change 'ENV LAMBDA_TASK_ROOT=/var/task' --change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
    --change 'WORKDIR /var/task' --change 'ENTRYPOINT ["/lambda-entrypoint.sh"]' --change 'CMD ["handler.handler"]' \
    - "$LAMBDA_IMAGE" >/dev/null
docker tag "$LAMBDA_IMAGE" "$LAMBDA_ARCH_IMAGE"
echo "standins: built $BUILD_IMAGE and $LAMBDA_IMAGE ($LAMBDA_ARCH_IMAGE)" >&2
