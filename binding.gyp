# The agent's one native addon: native/sd_notify.c (see its header for why).
# npm runs `node-gyp rebuild` for this file on `npm ci` / `npm install`;
# the result is build/Release/sd_notify.node (scripts/install.sh ships it).
{
  "targets": [
    {
      "target_name": "sd_notify",
      "sources": ["native/sd_notify.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}
