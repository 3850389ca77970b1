/*
 * A mailbox lets any thread run a function on one libuv loop's thread. Each worker owns one; it
 * is how a request on one worker reaches an upstream pinned to another, and how the answer comes
 * back. Posting takes a short mutex and wakes the loop with uv_async_send (coalesced).
 */
#ifndef GH_CORE_MAILBOX_H
#define GH_CORE_MAILBOX_H

#include <uv.h>

struct mailbox;
typedef void (*mailbox_cb)(void *arg);

/* Create (any thread; the loop must run on one thread only). Once the loop has drained a first
   letter, posts from its own thread wake it without a syscall. */
struct mailbox *mailbox_new(uv_loop_t *loop);
/* Any thread. Returns 0, ERR_CLOSED once closing began (cb is then not called), ERR_NOMEM. */
int mailbox_post(struct mailbox *mb, mailbox_cb cb, void *arg);
/* Owning thread: run what is queued, refuse new posts, close the handle and free on close. */
void mailbox_close(struct mailbox *mb);

#endif
