/* sd_notify(3) for stemedb-agent: one unix datagram to $NOTIFY_SOCKET, sent by
 * the calling process itself, so PID 1 sees the main PID in SCM_CREDENTIALS and
 * the unit can say NotifyAccess=main. Node core cannot send unix datagrams.
 *
 * Node-API only (no V8/nan headers): one build runs on every Node major.
 * send(address: string, message: Buffer) -> 0, or a negative errno.
 *  - address: "/path" or "@abstract" (as sd_notify(3) reads NOTIFY_SOCKET);
 *  - MSG_DONTWAIT: never blocks (a full queue is -EAGAIN, the caller logs it);
 *  - MSG_NOSIGNAL: no SIGPIPE;
 *  - a fresh CLOEXEC socket per call, closed before returning (no fd leaks
 *    into children, no state to go stale across a daemon-reexec). */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <node_api.h>

static int send_dgram(const char *addr, size_t alen, const void *buf, size_t len) {
  struct sockaddr_un sa;
  socklen_t salen;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (alen < 2 || (addr[0] != '/' && addr[0] != '@')) return -EAFNOSUPPORT;
  if (memchr(addr, 0, alen) != NULL) return -EINVAL;
  if (alen >= sizeof sa.sun_path) return -ENAMETOOLONG;
  memcpy(sa.sun_path, addr, alen);
  if (addr[0] == '@') {
    /* Abstract: a leading NUL, and the name's exact length (no NUL after). */
    sa.sun_path[0] = '\0';
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + alen);
  } else {
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + alen + 1);
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_name = &sa;
  mh.msg_namelen = salen;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ssize_t r;
  do r = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  int err = r < 0 ? -errno : ((size_t)r == len ? 0 : -EMSGSIZE);
  close(fd);
  return err;
}

static napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  char addr[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  size_t alen = 0;
  void *data = NULL;
  size_t len = 0;
  bool isbuf = false;
  if (argc != 2 ||
      napi_get_value_string_utf8(env, argv[0], addr, sizeof addr, &alen) != napi_ok ||
      napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "send(address: string, message: Buffer)");
    return NULL;
  }
  /* A truncated copy fills the buffer: refuse rather than send elsewhere. */
  int err = alen >= sizeof addr - 1 ? -ENAMETOOLONG : send_dgram(addr, alen, data, len);
  napi_value out;
  napi_create_int32(env, err, &out);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "send", NAPI_AUTO_LENGTH, Send, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "send", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
