/*
 * Line framing and message parsing for the stdio transport; see lines.h. The splitter hands out
 * lines straight from the caller's chunk whenever a line starts and ends inside it, and copies
 * only the unfinished tail of a chunk, so a stream of small messages is never copied twice.
 */
#include "upstream/lines.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A buffer that one big line grew past this size is given back once that line is done, so an
   idle transport does not keep max_message bytes allocated. */
#define LINES_KEEP_CAP (64 * 1024)

void line_splitter_init(struct line_splitter *ls, size_t max_line)
{
    if (max_line < 1)
        max_line = 1;
    if (max_line > SIZE_MAX / 2)
        max_line = SIZE_MAX / 2;
    ls->max_line = max_line;
    ls->skipping = false;
    buf_init(&ls->part, max_line + 1);
}

void line_splitter_release(struct line_splitter *ls)
{
    buf_release(&ls->part);
    ls->skipping = false;
}

static void part_done(struct line_splitter *ls)
{
    if (ls->part.cap > LINES_KEEP_CAP)
        buf_release(&ls->part);
    else
        buf_reset(&ls->part);
}

/* A complete line, "\n" already removed. */
static void deliver(const struct line_splitter *ls, const char *p, size_t len, line_cb cb,
                    void *arg)
{
    if (len > 0 && p[len - 1] == '\r')
        len--;
    if (len == 0)
        return;
    if (len > ls->max_line)
        cb(arg, p, ls->max_line, true);
    else
        cb(arg, p, len, false);
}

int line_splitter_feed(struct line_splitter *ls, const char *data, size_t n, line_cb cb, void *arg)
{
    int err = 0;
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t seg = nl != NULL ? (size_t)(nl - data) : n; /* bytes of this line in the chunk */
        size_t used = nl != NULL ? seg + 1 : n;

        if (ls->skipping) {
            if (nl != NULL)
                ls->skipping = false;
        } else if (ls->part.len == 0 && nl != NULL) {
            deliver(ls, data, seg, cb, arg); /* the common case: no copy */
        } else if (seg > ls->part.max - ls->part.len) {
            /* Too long: report it by its first max_line bytes, once, then skip to its end. */
            size_t take = ls->part.len < ls->max_line ? ls->max_line - ls->part.len : 0;
            if (take > seg)
                take = seg;
            if (buf_append(&ls->part, data, take) != 0)
                err = ERR_NOMEM;
            size_t have = ls->part.len < ls->max_line ? ls->part.len : ls->max_line;
            if (have > 0)
                cb(arg, ls->part.data, have, true);
            part_done(ls);
            ls->skipping = nl == NULL;
        } else if (buf_append(&ls->part, data, seg) != 0) {
            err = ERR_NOMEM;
            part_done(ls);
            ls->skipping = nl == NULL;
        } else if (nl != NULL) {
            deliver(ls, ls->part.data, ls->part.len, cb, arg);
            part_done(ls);
        }
        data += used;
        n -= used;
    }
    return err;
}

void line_splitter_finish(struct line_splitter *ls, line_cb cb, void *arg)
{
    if (!ls->skipping && ls->part.len > 0)
        deliver(ls, ls->part.data, ls->part.len, cb, arg);
    part_done(ls);
    ls->skipping = false;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

int line_parse_message(const char *line, size_t len, json_t **out, struct err_info *ei)
{
    int err = 0;
    json_error_t je;
    json_t *v =
        json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (ei != NULL)
        ei->where[0] = '\0';
    if (v == NULL) {
        char why[JSON_ERROR_TEXT_LENGTH];
        err = err_info_set(ei, ERR_PARSE, 1, je.position, "not JSON: %s (byte %d of %zu)",
                           line_json_reason(why, sizeof(why), &je), je.position, len);
        goto out;
    }
    if (json_is_array(v)) {
        err = err_info_set(ei, ERR_PROTOCOL, 0, 0,
                           "a JSON array: JSON-RPC batches are not allowed, a message must be "
                           "one object");
        goto out;
    }
    if (!json_is_object(v)) {
        err = err_info_set(ei, ERR_PROTOCOL, 0, 0, "a JSON %s: a message must be an object",
                           json_type_name(v));
        goto out;
    }
    *out = v;
    v = NULL;
out:
    json_decref(v);
    return err;
}

char *line_json_reason(char *out, size_t out_size, const json_error_t *je)
{
    /* jansson appends " near '<token>'" (the offending bytes) or " near end of file". */
    const char *near = strstr(je->text, " near ");
    size_t n = near != NULL ? (size_t)(near - je->text) : strlen(je->text);
    if (n >= out_size)
        n = out_size - 1;
    memcpy(out, je->text, n);
    out[n] = '\0';
    return out;
}

long long line_find_id(const char *line, size_t len)
{
    int depth = 0;
    bool key_is_id = false; /* the last string closed at depth 1 was the key "id" */
    size_t i = 0;
    while (i < len) {
        char c = line[i];
        if (c == '"') {
            size_t start = ++i;
            while (i < len && line[i] != '"')
                i += line[i] == '\\' ? 2 : 1;
            if (i >= len)
                return -1;
            key_is_id = depth == 1 && i - start == 2 && memcmp(line + start, "id", 2) == 0;
            i++;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0)
                return -1;
        } else if (c == ':' && key_is_id) {
            i++;
            while (i < len && (line[i] == ' ' || line[i] == '\t'))
                i++;
            long long id = 0;
            size_t digits = 0;
            while (i < len && line[i] >= '0' && line[i] <= '9' && digits < 18) {
                id = id * 10 + (line[i] - '0');
                i++;
                digits++;
            }
            bool ends = i == len || (line[i] != '\0' && strchr(",} \t\r\n", line[i]) != NULL);
            return digits > 0 && ends ? id : -1;
        } else if (c != ',' && c != ' ' && c != '\t' && c != ':') {
            key_is_id = false;
        }
        i++;
    }
    return -1;
}

char *line_escape(char *out, size_t out_size, const char *in, size_t n, size_t max_in)
{
    size_t o = 0;
    bool cut = n > max_in;
    if (cut)
        n = max_in;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        char tmp[5];
        size_t k;
        if (c == '\\') {
            tmp[0] = tmp[1] = '\\';
            k = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            tmp[0] = (char)c;
            k = 1;
        } else {
            snprintf(tmp, sizeof(tmp), "\\x%02x", c);
            k = 4;
        }
        if (o + k + 4 > out_size) { /* keep room for "..." and the NUL */
            cut = true;
            break;
        }
        memcpy(out + o, tmp, k);
        o += k;
    }
    if (cut && o + 4 <= out_size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
