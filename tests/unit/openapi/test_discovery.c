/*
 * Discovery modes: BM25 ranking on a small fixed corpus (expected orders and scores worked out
 * from the formula in src/openapi/search.c over the stemmed tokens, e.g. "pets" -> "pet",
 * "delete" -> "delet"), the tool set of each mode, navigation of the
 * hierarchical mode down to the catalog tool a static call would use, and the search mode.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi.h"
#include "test.h"

static const char *const corpus_names[] = {"list_pets", "get_pet", "delete_pet", "create_user",
                                           "list_users"};
static const char *const corpus_texts[] = {"list pets list all the pets", "get one pet by id",
                                           "delete a pet by id", "create a user account",
                                           "list users"};

static void test_bm25(void)
{
    struct openapi_bm25 *ix = NULL;
    CHECK_INT(openapi_bm25_new(corpus_names, corpus_texts, 5, &ix), 0);
    if (ix == NULL)
        return;
    size_t out[5];
    double sc[5];
    /* a tie (same length, same frequencies) is broken by name; "pets" is stemmed to "pet" */
    CHECK_INT(openapi_bm25_rank(ix, "pet id", 5, out, sc), 3);
    CHECK_STR(corpus_names[out[0]], "delete_pet");
    CHECK_STR(corpus_names[out[1]], "get_pet");
    CHECK_STR(corpus_names[out[2]], "list_pets");
    CHECK(fabs(sc[0] - 1.3397283272679223) < 1e-9);
    CHECK(sc[0] == sc[1]);
    CHECK(fabs(sc[2] - 0.6723564596768572) < 1e-9);
    /* length normalisation: one "list" in 2 tokens beats two in 6 */
    CHECK_INT(openapi_bm25_rank(ix, "list", 5, out, sc), 2);
    CHECK_STR(corpus_names[out[0]], "list_users");
    CHECK_STR(corpus_names[out[1]], "list_pets");
    CHECK(fabs(sc[0] - 1.126933161912999) < 1e-9);
    CHECK(fabs(sc[1] - 1.0920795589672359) < 1e-9);
    /* case and punctuation do not matter; a repeated query term counts once */
    CHECK_INT(openapi_bm25_rank(ix, "LIST Pets!", 5, out, sc), 4);
    CHECK_STR(corpus_names[out[0]], "list_pets");
    CHECK(fabs(sc[0] - 1.764436018644093) < 1e-9);
    CHECK_INT(openapi_bm25_rank(ix, "users list list", 5, out, sc), 3);
    CHECK_STR(corpus_names[out[0]], "list_users");
    CHECK_STR(corpus_names[out[2]], "create_user");
    CHECK(fabs(sc[0] - 2.253866323825998) < 1e-9);
    /* stemming: plurals, -ed, -ing and a final e meet their stem */
    CHECK_INT(openapi_bm25_rank(ix, "creating", 5, out, NULL), 1);
    CHECK_STR(corpus_names[out[0]], "create_user");
    CHECK_INT(openapi_bm25_rank(ix, "deleted accounts", 5, out, NULL), 2);
    /* the limit, unknown terms, nothing to search for */
    CHECK_INT(openapi_bm25_rank(ix, "pet id", 1, out, NULL), 1);
    CHECK_STR(corpus_names[out[0]], "delete_pet");
    CHECK_INT(openapi_bm25_rank(ix, "zebra", 5, out, NULL), 0);
    CHECK_INT(openapi_bm25_rank(ix, " -- ", 5, out, NULL), 0);
    openapi_bm25_free(ix);

    /* an empty index ranks nothing */
    CHECK_INT(openapi_bm25_new(NULL, NULL, 0, &ix), 0);
    CHECK_INT(openapi_bm25_rank(ix, "pet", 5, out, NULL), 0);
    openapi_bm25_free(ix);
}

static struct openapi_catalog *pets(void)
{
    struct openapi_doc *doc = NULL;
    struct openapi_catalog *cat = NULL;
    struct err_info ei = {0};
    if (openapi_doc_load_file("tests/openapi/gateway-pets.yaml", &doc, &ei) == 0)
        openapi_catalog_build(doc, NULL, &cat, &ei);
    openapi_doc_unref(doc);
    return cat;
}

static char *names_of(const json_t *tools)
{
    size_t len = 0, i;
    json_t *t;
    static char buf[512];
    buf[0] = '\0';
    json_array_foreach(tools, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? "," : "", n ? n : "?");
    }
    return buf;
}

/* The text of a tool result, and whether it is an error. */
static const char *text_of(const json_t *r, bool *is_error)
{
    *is_error = json_is_true(json_object_get(r, "isError"));
    return json_string_value(
        json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
}

/* The search mode's analyzer and fields (openapi_bm25_new_fields). */
static void test_bm25_fields(void)
{
    static const char *const names[] = {"chat_delete", "chat_post", "add_worklog", "get_user",
                                        "set_topic"};
    static const char *const texts[] = {
        "chat_delete Deletes a message.",    "ts of the message",
        "chat_postMessage Sends a message.", "channel to post to",
        "add_worklog Adds a worklog.",       "time spent on the work",
        "get_user Returns a user.",          "the log of the user",
        "set_topic Sets the topic.",         "the message to delete"};
    static const double weights[] = {3, 0.1};
    struct openapi_bm25 *ix = NULL;
    CHECK_INT(openapi_bm25_new_fields(names, texts, 2, weights, NULL, 5, &ix), 0);
    if (ix == NULL)
        return;
    size_t out[5];
    /* a word of the vocabulary finds its group (remove -> delete), the name field outweighs the
       argument text (set_topic's "delete" is an argument's) */
    CHECK_INT(openapi_bm25_rank(ix, "remove", 5, out, NULL), 2);
    CHECK_STR(names[out[0]], "chat_delete");
    /* the thesaurus of actions: "wipe" is a delete, "email" a message */
    CHECK_INT(openapi_bm25_rank(ix, "wipe", 5, out, NULL), 2);
    CHECK_STR(names[out[0]], "chat_delete");
    CHECK_INT(openapi_bm25_rank(ix, "email", 5, out, NULL), 3);
    /* camelCase is split: "post message" meets postMessage; "send" is post's group */
    CHECK_INT(openapi_bm25_rank(ix, "send a message", 1, out, NULL), 1);
    CHECK_STR(names[out[0]], "chat_post");
    /* a compound of two words of the documents counts as them: worklog = work + log */
    CHECK_INT(openapi_bm25_rank(ix, "log work", 1, out, NULL), 1);
    CHECK_STR(names[out[0]], "add_worklog");
    /* who -> the user group */
    CHECK_INT(openapi_bm25_rank(ix, "who is it", 1, out, NULL), 1);
    CHECK_STR(names[out[0]], "get_user");
    /* stop words alone match nothing; a value (a word with a digit) is not searched for */
    CHECK_INT(openapi_bm25_rank(ix, "the of to a", 5, out, NULL), 0);
    CHECK_INT(openapi_bm25_rank(ix, "don't it's s t", 5, out, NULL), 0); /* contractions */
    CHECK_INT(openapi_bm25_rank(ix, "user-42", 5, out, NULL), 0);
    /* nor are names and texts: after "called"/"named" (a word, or a run of capitalised ones),
       quoted, addresses and handles, the text after "saying" */
    CHECK_INT(openapi_bm25_rank(ix, "a topic called message", 5, out, NULL), 1);
    CHECK_STR(names[out[0]], "set_topic");
    CHECK_INT(openapi_bm25_rank(ix, "a topic named Message Log", 5, out, NULL), 1);
    CHECK_INT(openapi_bm25_rank(ix, "a topic named Log for the user", 5, out, NULL), 2);
    CHECK_INT(openapi_bm25_rank(ix, "topic 'message log'", 5, out, NULL), 1);
    CHECK_INT(openapi_bm25_rank(ix, "topic \"message\"", 5, out, NULL), 1);
    CHECK_INT(openapi_bm25_rank(ix, "topic user@example.com #message @log", 5, out, NULL), 1);
    CHECK_INT(openapi_bm25_rank(ix, "topic saying the message is a log", 5, out, NULL), 1);
    /* a phrasal verb is one word: "look up" is "lookup", in the search group with "find" */
    CHECK_INT(openapi_bm25_rank(ix, "look up", 5, out, NULL), 0);
    /* only the first 64 words of a query are searched for */
    char longq[64 * 6 + 16] = "";
    for (int i = 0; i < 64; i++)
        strcat(longq, "zebra ");
    CHECK_INT(openapi_bm25_rank(ix, strcat(longq, "remove"), 5, out, NULL), 0);
    CHECK_INT(openapi_bm25_rank(ix, longq + 6, 5, out, NULL), 2);
    openapi_bm25_free(ix);
    CHECK_INT(openapi_bm25_new_fields(names, texts, 0, weights, NULL, 5, &ix), ERR_INVAL);

    /* the first word's kind: "show" reads, so of two equal matches the GET comes first (else
       the tie would go to the name, create_widget) */
    static const char *const kn[] = {"create_widget", "list_widgets"};
    static const char *const kt[] = {"widget things", "widget things"};
    static const bool reads[] = {false, true};
    CHECK_INT(openapi_bm25_new_fields(kn, kt, 1, weights, reads, 2, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "show widget things", 2, out, NULL), 2);
        CHECK_STR(kn[out[0]], "list_widgets");
        CHECK_INT(openapi_bm25_rank(ix, "cancel widget things", 2, out, NULL), 2);
        CHECK_STR(kn[out[0]], "create_widget");
        /* a question reads */
        CHECK_INT(openapi_bm25_rank(ix, "which widget things", 2, out, NULL), 2);
        CHECK_STR(kn[out[0]], "list_widgets");
        openapi_bm25_free(ix);
    }

    /* a change of state is an update; a noun used as a verb adds one; an abbreviation of a word
       of the documents counts as it */
    static const char *const sn[] = {"drop_note", "make_note", "update_promotion", "get_promotion"};
    static const char *const st[] = {"drop_note Drops a note.", "make_note Makes a note.",
                                     "update_promotion Updates a promotion.",
                                     "get_promotion Returns a promotion."};
    static const bool sr[] = {false, false, false, true};
    CHECK_INT(openapi_bm25_new_fields(sn, st, 1, weights, sr, 4, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "archive the promotion", 2, out, NULL), 2);
        CHECK_STR(sn[out[0]], "update_promotion");
        CHECK_INT(openapi_bm25_rank(ix, "note on the promotion", 4, out, NULL), 4);
        CHECK_STR(sn[out[0]], "make_note");
        CHECK_INT(openapi_bm25_rank(ix, "show the promo", 4, out, NULL), 2);
        CHECK_STR(sn[out[0]], "get_promotion");
        openapi_bm25_free(ix);
    }
    /* an operation whose name says more than was asked for is a more specific one */
    static const char *const un[] = {"list_project_types", "list_projects", "get_user", "get_team"};
    static const char *const ut[] = {
        "list_project_types Lists the types of projects, for projects.",
        "list_projects Lists the projects of the site that the caller may see.",
        "get_user Returns a user.", "get_team Returns a team."};
    CHECK_INT(openapi_bm25_new_fields(un, ut, 1, weights, NULL, 4, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "list projects", 2, out, NULL), 2);
        CHECK_STR(un[out[0]], "list_projects");
        openapi_bm25_free(ix);
    }
    /* ... but a name's stop words are no words of it, and what follows its preposition is a
       scope (half a word) */
    static const char *const pn[] = {"repos_create_for_user", "repos_create_hook", "get_user",
                                     "get_team"};
    static const char *const pt[] = {"repos_create_for_user Creates a repository.",
                                     "repos_create_hook Creates a repository.",
                                     "get_user Returns a user.", "get_team Returns a team."};
    CHECK_INT(openapi_bm25_new_fields(pn, pt, 1, weights, NULL, 4, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "create a repository", 2, out, NULL), 2);
        CHECK_STR(pn[out[0]], "repos_create_for_user");
        openapi_bm25_free(ix);
    }
    /* a noun counts as the verb it derives from when the documents have that verb:
       subscription -> subscribe, invitation -> invite, payment -> pay */
    static const char *const dn[] = {"subscriptions_insert", "channels_update", "subscribe_note",
                                     "invitations_get",      "payments_list",   "pay_note"};
    static const char *const dt[] = {"subscriptions_insert Adds a subscription.",
                                     "channels_update Updates a channel.",
                                     "subscribe_note How to subscribe.",
                                     "invitations_get Returns an invitation.",
                                     "payments_list Lists payments.",
                                     "pay_note How to pay."};
    CHECK_INT(openapi_bm25_new_fields(dn, dt, 1, weights, NULL, 6, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "subscribe", 6, out, NULL), 2);
        CHECK_INT(openapi_bm25_rank(ix, "invite", 6, out, NULL), 1);
        CHECK_STR(dn[out[0]], "invitations_get");
        CHECK_INT(openapi_bm25_rank(ix, "pay", 6, out, NULL), 2);
        openapi_bm25_free(ix);
    }
    /* "stop sharing" is an unshare (the delete group) of a sharing (the share group); a past
       tense in -ied is the verb in -y (notified -> notify, the send group) */
    static const char *const xn[] = {"channels_stop", "permissions_delete", "permissions_create",
                                     "files_get"};
    static const char *const xt[] = {
        "channels_stop Stops watching resources.", "permissions_delete Deletes a permission.",
        "permissions_create Creates a permission.", "files_get Gets a file."};
    CHECK_INT(openapi_bm25_new_fields(xn, xt, 1, weights, NULL, 4, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "stop sharing a file", 4, out, NULL), 3);
        CHECK_STR(xn[out[0]], "permissions_delete");
        openapi_bm25_free(ix);
    }
    static const char *const yn[] = {"notify_user", "get_user"};
    static const char *const yt[] = {"notify_user Notify a user.", "get_user Returns a user."};
    CHECK_INT(openapi_bm25_new_fields(yn, yt, 1, weights, NULL, 2, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "notified", 2, out, NULL), 1);
        openapi_bm25_free(ix);
    }
    /* a word the tools are named with is the document's own thing: its group counts less (a
       calendar is an event, but not in an API of calendars and events) */
    static const char *const cn[] = {"events_insert", "calendars_insert", "colors_get"};
    static const char *const ct[] = {
        "events_insert Creates an event in a calendar: a meeting or an appointment.",
        ("calendars_insert Creates a secondary calendar, owned by the user, with a name and a "
         "time zone."),
        "colors_get Returns the colors."};
    CHECK_INT(openapi_bm25_new_fields(cn, ct, 1, weights, NULL, 3, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "add a calendar", 3, out, NULL), 2);
        CHECK_STR(cn[out[0]], "calendars_insert");
        openapi_bm25_free(ix);
    }
    /* a request whose verb derives a noun the tools are named with asks to add one: subscribing
       is inserting a subscription */
    static const char *const vn[] = {"subscriptions_insert", "subscriptions_delete", "help_get"};
    static const char *const vt[] = {"subscriptions_insert Inserts a resource.",
                                     "subscriptions_delete Deletes a resource.",
                                     "help_get How to subscribe."};
    static const bool vr[] = {false, false, true};
    CHECK_INT(openapi_bm25_new_fields(vn, vt, 1, weights, vr, 3, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "subscribe to a channel", 3, out, NULL), 3);
        CHECK_STR(vn[out[0]], "subscriptions_insert");
        openapi_bm25_free(ix);
    }
    /* ... and a noun of a tool's name is no unmatched word when the request has its verb */
    static const char *const wn[] = {"subscriptions_insert", "watch", "other_get"};
    static const char *const wt[] = {"subscriptions_insert Inserts a resource.",
                                     "watch Subscribe to widgets and other things of the account.",
                                     "other_get Returns another thing."};
    CHECK_INT(openapi_bm25_new_fields(wn, wt, 1, weights, NULL, 3, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "subscribe", 3, out, NULL), 2);
        CHECK_STR(wn[out[0]], "subscriptions_insert");
        openapi_bm25_free(ix);
    }
    /* a request to read things in the plural asks for the list, not one item's GET */
    static const char *const in[] = {"comments_get", "comments_list"};
    static const char *const it[] = {"comments_get Returns comments.",
                                     "comments_list Returns comments."};
    static const bool ir[] = {true, true}, ii[] = {true, false};
    CHECK_INT(openapi_bm25_new_fields(in, it, 1, weights, ir, 2, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "read the comments", 2, out, NULL), 2);
        CHECK_STR(in[out[0]], "comments_get"); /* a tie, by name */
        openapi_bm25_set_items(ix, ii);
        CHECK_INT(openapi_bm25_rank(ix, "read the comments", 2, out, NULL), 2);
        CHECK_STR(in[out[0]], "comments_list");
        CHECK_INT(openapi_bm25_rank(ix, "read the comment", 2, out, NULL), 2);
        CHECK_STR(in[out[0]], "comments_get");
        /* "who" asks for people: a list too */
        CHECK_INT(openapi_bm25_rank(ix, "who left comments", 2, out, NULL), 2);
        CHECK_STR(in[out[0]], "comments_list");
        CHECK_INT(openapi_bm25_rank(ix, "who commented", 2, out, NULL), 2);
        CHECK_STR(in[out[0]], "comments_list");
        openapi_bm25_free(ix);
    }
    /* British and American spellings meet */
    static const char *const bn[] = {"colors_get", "organizations_list", "favorites_add"};
    static const char *const bt[] = {"colors_get Returns the colors.",
                                     "organizations_list Lists organizations.",
                                     "favorites_add Adds a favorite."};
    CHECK_INT(openapi_bm25_new_fields(bn, bt, 1, weights, NULL, 3, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "which colours", 3, out, NULL), 1);
        CHECK_STR(bn[out[0]], "colors_get");
        CHECK_INT(openapi_bm25_rank(ix, "organisations", 3, out, NULL), 1);
        CHECK_INT(openapi_bm25_rank(ix, "my favourites", 3, out, NULL), 1);
        openapi_bm25_free(ix);
    }
    /* to cancel a thing that has no cancel of its own is often to delete it */
    static const char *const kc[] = {"events_delete", "channels_stop"};
    static const char *const kx[] = {"events_delete Deletes an event.",
                                     "channels_stop Stops watching resources."};
    CHECK_INT(openapi_bm25_new_fields(kc, kx, 1, weights, NULL, 2, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "cancel the meeting", 2, out, NULL), 2);
        CHECK_STR(kc[out[0]], "events_delete");
        CHECK_INT(openapi_bm25_rank(ix, "cancel", 2, out, NULL), 2);
        openapi_bm25_free(ix);
    }
    /* a request that starts with a noun of the documents in another form (reply, where they
       say replies) adds one too */
    static const char *const rn[] = {"comments_delete", "comments_insert", "threads_list"};
    static const char *const rt[] = {"comments_delete Deletes a resource.",
                                     "comments_insert Inserts a resource.",
                                     "threads_list Returns threads and their replies."};
    static const bool rr[] = {false, false, true};
    CHECK_INT(openapi_bm25_new_fields(rn, rt, 1, weights, rr, 3, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "reply to a comment", 3, out, NULL), 3);
        CHECK_STR(rn[out[0]], "comments_insert");
        openapi_bm25_free(ix);
    }
    /* ... and one that starts with a message used as a verb sends one */
    static const char *const mn[] = {"invoices_create", "invoices_send"};
    static const char *const mt[] = {"invoices_create Makes an invoice for an email address.",
                                     "invoices_send Sends an invoice for an email address."};
    CHECK_INT(openapi_bm25_new_fields(mn, mt, 1, weights, NULL, 2, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "email the invoice", 2, out, NULL), 2);
        CHECK_STR(mn[out[0]], "invoices_send");
        openapi_bm25_free(ix);
    }
    /* to be notified of something is to watch it */
    static const char *const nn[] = {"files_watch", "files_get"};
    static const char *const nt[] = {"files_watch Watches for changes to a file.",
                                     "files_get Gets a file."};
    CHECK_INT(openapi_bm25_new_fields(nn, nt, 1, weights, NULL, 2, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "be notified of a file", 2, out, NULL), 2);
        CHECK_STR(nn[out[0]], "files_watch");
        openapi_bm25_free(ix);
    }
    /* "get" before a participle is a passive, no read: the participle is the verb */
    static const bool nr[] = {false, true};
    CHECK_INT(openapi_bm25_new_fields(nn, nt, 1, weights, nr, 2, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "get notified when a file changes", 2, out, NULL), 2);
        CHECK_STR(nn[out[0]], "files_watch");
        CHECK_INT(openapi_bm25_rank(ix, "get a file", 2, out, NULL), 2);
        CHECK_STR(nn[out[0]], "files_get");
        openapi_bm25_free(ix);
    }
    /* a preamble of wanting before "to" is not the verb asked for ("like" would be a star) */
    static const char *const an[] = {"files_watch", "files_list", "stars_add"};
    static const char *const at[] = {"files_watch Watches files for changes.",
                                     "files_list Lists files.",
                                     "stars_add Stars a file, like a favorite."};
    static const bool ar[] = {false, true, false};
    CHECK_INT(openapi_bm25_new_fields(an, at, 1, weights, ar, 3, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "I'd like to view the files", 3, out, NULL), 3);
        CHECK_STR(an[out[0]], "files_list");
        CHECK_INT(openapi_bm25_rank(ix, "like a file", 3, out, NULL), 3);
        CHECK_STR(an[out[0]], "stars_add");
        openapi_bm25_free(ix);
    }
    /* ... in requests only: an operation named for another change of state is no update */
    static const char *const ln[] = {"issues_lock", "issues_update"};
    static const char *const lt[] = {"issues_lock Locks an issue.",
                                     "issues_update Updates an issue."};
    CHECK_INT(openapi_bm25_new_fields(ln, lt, 1, weights, NULL, 2, &ix), 0);
    if (ix) {
        CHECK_INT(openapi_bm25_rank(ix, "close the issue", 2, out, NULL), 2);
        CHECK_STR(ln[out[0]], "issues_update");
        openapi_bm25_free(ix);
    }
}

static char *oa_test_doc(const char *title)
{
    static const char fmt[] =
        "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"%s\",\"version\":\"1\"},\"paths\":{\"/a\":"
        "{\"get\":{\"operationId\":\"a\",\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}";
    size_t n = sizeof(fmt) + strlen(title);
    char *s = malloc(n);
    if (s)
        snprintf(s, n, fmt, title);
    return s;
}

/* The API's name in the navigation tools: " API" is not added to a title that ends with it. */
static void test_title_api(void)
{
    static const char *const titles[] = {"Slack Web API", "Pets", "Rapid", "api"};
    static const char *const want[] = {"Search the 1 operations of the Slack Web API by",
                                       "Search the 1 operations of the Pets API by",
                                       "Search the 1 operations of the Rapid API by",
                                       "Search the 1 operations of the api by"};
    for (size_t i = 0; i < 4; i++) {
        char *text = oa_test_doc(titles[i]);
        struct openapi_doc *doc = NULL;
        struct openapi_catalog *cat = NULL;
        struct openapi_discovery *d = NULL;
        struct err_info ei = {0};
        CHECK_INT(openapi_doc_load_mem(text, strlen(text), &doc, &ei), 0);
        if (doc && openapi_catalog_build(doc, NULL, &cat, &ei) == 0 &&
            openapi_discovery_new(cat, OPENAPI_DISCOVERY_SEARCH, &d) == 0) {
            json_t *tools = openapi_discovery_tools(d);
            const char *desc =
                json_string_value(json_object_get(json_array_get(tools, 0), "description"));
            CHECK(desc && strncmp(desc, want[i], strlen(want[i])) == 0);
            CHECK(desc && strstr(desc, "API API") == NULL);
            json_decref(tools);
        }
        openapi_discovery_free(d);
        openapi_catalog_unref(cat);
        openapi_doc_unref(doc);
        free(text);
    }
}

static void test_mode_tool_sets(void)
{
    struct openapi_catalog *cat = pets();
    CHECK(cat != NULL);
    if (cat == NULL)
        return;
    struct openapi_discovery *d = NULL;
    CHECK_INT(openapi_discovery_new(cat, OPENAPI_DISCOVERY_STATIC, &d), 0);
    json_t *tools = openapi_discovery_tools(d);
    CHECK_STR(names_of(tools), "list_pets,create_pet,get_pet,delete_pet,add_note,get_big");
    json_decref(tools);
    openapi_discovery_free(d);

    CHECK_INT(openapi_discovery_new(cat, OPENAPI_DISCOVERY_HIERARCHICAL, &d), 0);
    tools = openapi_discovery_tools(d);
    CHECK_STR(names_of(tools), "list_categories,list_operations,describe_operation,call_operation");
    CHECK_CONTAINS(json_string_value(json_object_get(json_array_get(tools, 0), "description")),
                   "Gateway Pets API (6 operations)");
    json_decref(tools);
    openapi_discovery_free(d);

    CHECK_INT(openapi_discovery_new(cat, OPENAPI_DISCOVERY_SEARCH, &d), 0);
    tools = openapi_discovery_tools(d);
    CHECK_STR(names_of(tools), "search_operations,call_operation");
    json_t *limit = json_object_get(
        json_object_get(json_object_get(json_array_get(tools, 0), "inputSchema"), "properties"),
        "limit");
    CHECK_INT(json_integer_value(json_object_get(limit, "maximum")), 10);
    CHECK_INT(json_integer_value(json_object_get(limit, "default")), 5);
    json_decref(tools);
    openapi_discovery_free(d);

    CHECK_STR(openapi_discovery_mode_str(OPENAPI_DISCOVERY_SEARCH), "search");
    CHECK_INT(openapi_discovery_mode_parse("hierarchical"), OPENAPI_DISCOVERY_HIERARCHICAL);
    CHECK_INT(openapi_discovery_mode_parse("lazy"), -1);
    openapi_catalog_unref(cat);
}

/* One call through openapi_discovery_call with arguments given as JSON text. */
static int dcall(const struct openapi_discovery *d, const char *name, const char *args_json,
                 json_t **result, const struct openapi_tool **tool, json_t **tool_args,
                 json_t **args)
{
    *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
    return openapi_discovery_call(d, name, *args, NULL, result, tool, tool_args);
}

static void test_hierarchical(void)
{
    struct openapi_catalog *cat = pets();
    struct openapi_discovery *d = NULL;
    if (cat == NULL || openapi_discovery_new(cat, OPENAPI_DISCOVERY_HIERARCHICAL, &d) != 0) {
        CHECK(0);
        openapi_catalog_unref(cat);
        return;
    }
    json_t *r = NULL, *ta = NULL, *args = NULL;
    const struct openapi_tool *tool = NULL;
    bool err;

    CHECK_INT(dcall(d, "list_categories", NULL, &r, &tool, &ta, &args), 0);
    CHECK_STR(text_of(r, &err), "2 categories (name (operations): description); list_operations "
                                "lists one:\nbig (1): Operations on /big.\npets (5): Operations "
                                "on /pets.");
    CHECK(!err && tool == NULL);
    json_decref(r);

    CHECK_INT(dcall(d, "list_operations", "{\"category\":\"pets\"}", &r, &tool, &ta, &args), 0);
    CHECK_STR(text_of(r, &err),
              "5 operations in pets (describe_operation gives one's arguments):\nlist_pets: List "
              "pets.\ncreate_pet: Create a pet.\nget_pet: One pet.\ndelete_pet: Delete a "
              "pet.\nadd_note: Add a note to a pet (form body).");
    json_decref(r);
    json_decref(args);

    CHECK_INT(dcall(d, "list_operations", "{\"category\":\"cats\"}", &r, &tool, &ta, &args), 0);
    CHECK_STR(text_of(r, &err),
              "unknown category \"cats\"; call list_categories for the categories");
    CHECK(err);
    json_decref(r);
    json_decref(args);

    CHECK_INT(dcall(d, "list_operations", "{}", &r, &tool, &ta, &args), 0);
    CHECK_STR(text_of(r, &err), "list_operations needs the string argument \"category\"");
    CHECK(err);
    json_decref(r);
    json_decref(args);

    /* describe_operation gives exactly the static tool definition */
    CHECK_INT(dcall(d, "describe_operation", "{\"name\":\"get_pet\"}", &r, &tool, &ta, &args), 0);
    json_t *def = json_loads(text_of(r, &err), 0, NULL);
    json_t *want = openapi_tool_to_json(openapi_catalog_find(cat, "get_pet"));
    CHECK(def != NULL && json_equal(def, want));
    json_decref(def);
    json_decref(want);
    json_decref(r);
    json_decref(args);

    CHECK_INT(dcall(d, "describe_operation", "{\"name\":\"get_cat\"}", &r, &tool, &ta, &args), 0);
    CHECK_STR(text_of(r, &err), "unknown operation \"get_cat\"; call list_operations to find its "
                                "name (list_categories gives the categories)");
    CHECK(err);
    json_decref(r);
    json_decref(args);

    /* call_operation resolves to the catalog tool, with the inner arguments */
    CHECK_INT(dcall(d, "call_operation", "{\"name\":\"get_pet\",\"arguments\":{\"petId\":\"7\"}}",
                    &r, &tool, &ta, &args),
              0);
    CHECK(r == NULL && tool == openapi_catalog_find(cat, "get_pet"));
    CHECK(ta == json_object_get(args, "arguments"));
    json_decref(args);

    CHECK_INT(dcall(d, "call_operation", "{\"name\":\"get_pet\",\"arguments\":[1]}", &r, &tool, &ta,
                    &args),
              0);
    CHECK_STR(text_of(r, &err), "the arguments of operation get_pet must be an object");
    CHECK(err && tool == NULL);
    json_decref(r);
    json_decref(args);

    CHECK_INT(dcall(d, "call_operation", "{\"name\":\"nope\"}", &r, &tool, &ta, &args), 0);
    CHECK_CONTAINS(text_of(r, &err), "unknown operation \"nope\"; call list_operations");
    CHECK(err && tool == NULL);
    json_decref(r);
    json_decref(args);

    /* a catalog name called directly still works; an unknown tool is not found */
    CHECK_INT(dcall(d, "delete_pet", "{\"petId\":\"1\"}", &r, &tool, &ta, &args), 0);
    CHECK(r == NULL && tool == openapi_catalog_find(cat, "delete_pet") && ta == args);
    json_decref(args);
    CHECK_INT(dcall(d, "search_operations", "{\"query\":\"pet\"}", &r, &tool, &ta, &args),
              ERR_NOTFOUND);
    json_decref(args);
    CHECK_INT(dcall(d, "list_operations", "[1]", &r, &tool, &ta, &args), 0);
    CHECK_STR(text_of(r, &err), "the arguments of list_operations must be an object");
    CHECK(err);
    json_decref(r);
    json_decref(args);
    CHECK_INT(dcall(d, "nope", "[1]", &r, &tool, &ta, &args), ERR_NOTFOUND);
    json_decref(args);

    openapi_discovery_free(d);
    openapi_catalog_unref(cat);
}

/* list_operations pages a large category, 40 operations at a time. */
static void test_list_operations_pages(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"T\",\"version\":\"1\"},\"paths\":{");
    for (int i = 0; i < 45; i++)
        fprintf(f,
                "%s\"/things/t%02d\":{\"get\":{\"operationId\":\"get%02d\",\"summary\":\"Get "
                "thing %d.\",\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
                i ? "," : "", i, i, i);
    fprintf(f, "}}");
    fclose(f);
    struct openapi_doc *doc = NULL;
    struct openapi_catalog *cat = NULL;
    struct openapi_discovery *d = NULL;
    struct err_info ei = {0};
    if (openapi_doc_load_mem(text, len, &doc, &ei) != 0 ||
        openapi_catalog_build(doc, NULL, &cat, &ei) != 0 ||
        openapi_discovery_new(cat, OPENAPI_DISCOVERY_HIERARCHICAL, &d) != 0) {
        CHECK(0);
        goto out;
    }
    json_t *r = NULL, *ta = NULL, *args = NULL;
    const struct openapi_tool *tool = NULL;
    bool err;
    CHECK_INT(dcall(d, "list_operations", "{\"category\":\"things\"}", &r, &tool, &ta, &args), 0);
    const char *t = text_of(r, &err);
    CHECK(!err);
    CHECK_CONTAINS(t, "45 operations in things, 1 to 40 shown");
    CHECK_CONTAINS(t, "\nget39: Get thing 39.\n(more: call list_operations with category things "
                      "and offset 40)");
    CHECK(strstr(t, "get40") == NULL);
    json_decref(r);
    json_decref(args);
    CHECK_INT(dcall(d, "list_operations", "{\"category\":\"things\",\"offset\":40}", &r, &tool, &ta,
                    &args),
              0);
    t = text_of(r, &err);
    CHECK_CONTAINS(t, "45 operations in things, 41 to 45 shown");
    CHECK_CONTAINS(t, "\nget44: Get thing 44.");
    CHECK(strstr(t, "(more") == NULL && strstr(t, "get39") == NULL);
    json_decref(r);
    json_decref(args);
    CHECK_INT(dcall(d, "list_operations", "{\"category\":\"things\",\"offset\":45}", &r, &tool, &ta,
                    &args),
              0);
    CHECK_STR(text_of(r, &err),
              "the offset of list_operations must be an integer from 0 to 44 for category things");
    CHECK(err);
    json_decref(r);
    json_decref(args);
    /* search: a tool's name finds it first, in full, even when its words find nothing (get07
       has a digit: a value, not searched for) */
    openapi_discovery_free(d);
    d = NULL;
    CHECK_INT(openapi_discovery_new(cat, OPENAPI_DISCOVERY_SEARCH, &d), 0);
    CHECK_INT(dcall(d, "search_operations", "{\"query\":\"get07\"}", &r, &tool, &ta, &args), 0);
    json_t *hits = json_loads(text_of(r, &err), 0, NULL);
    json_t *want = openapi_tool_to_json(openapi_catalog_find(cat, "get07"));
    CHECK(json_array_size(hits) == 1 && json_equal(json_array_get(hits, 0), want));
    json_decref(want);
    json_decref(hits);
    json_decref(r);
    json_decref(args);
out:
    free(text);
    openapi_discovery_free(d);
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

static void test_search(void)
{
    struct openapi_catalog *cat = pets();
    struct openapi_discovery *d = NULL;
    if (cat == NULL || openapi_discovery_new(cat, OPENAPI_DISCOVERY_SEARCH, &d) != 0) {
        CHECK(0);
        openapi_catalog_unref(cat);
        return;
    }
    json_t *r = NULL, *ta = NULL, *args = NULL;
    const struct openapi_tool *tool = NULL;
    bool err;

    CHECK_INT(
        dcall(d, "search_operations", "{\"query\":\"note\",\"limit\":2}", &r, &tool, &ta, &args),
        0);
    json_t *hits = json_loads(text_of(r, &err), 0, NULL);
    CHECK(!err && json_array_size(hits) == 1);
    json_t *want = openapi_tool_to_json(openapi_catalog_find(cat, "add_note"));
    CHECK(json_equal(json_array_get(hits, 0), want));
    json_decref(want);
    json_decref(hits);
    json_decref(r);
    json_decref(args);

    CHECK_INT(dcall(d, "search_operations", "{\"query\":\"delete a pet\"}", &r, &tool, &ta, &args),
              0);
    hits = json_loads(text_of(r, &err), 0, NULL);
    CHECK(json_array_size(hits) >= 1 && json_array_size(hits) <= 5);
    CHECK_STR(json_string_value(json_object_get(json_array_get(hits, 0), "name")), "delete_pet");
    json_decref(hits);
    json_decref(r);
    json_decref(args);

    /* the first two in full, the others by name and description; a name finds its tool first */
    CHECK_INT(
        dcall(d, "search_operations", "{\"query\":\"pet\",\"limit\":4}", &r, &tool, &ta, &args), 0);
    hits = json_loads(text_of(r, &err), 0, NULL);
    CHECK(json_array_size(hits) == 4);
    const char *third = json_string_value(json_object_get(json_array_get(hits, 2), "name"));
    for (size_t i = 0; i < json_array_size(hits); i++)
        CHECK((json_object_get(json_array_get(hits, i), "inputSchema") != NULL) == (i < 2));
    CHECK(json_object_size(json_array_get(hits, 3)) == 2); /* name, description */
    char q[200];
    snprintf(q, sizeof(q), "{\"query\":\"%s\",\"limit\":4}", third ? third : "");
    json_decref(r);
    json_decref(args);
    CHECK_INT(dcall(d, "search_operations", q, &r, &tool, &ta, &args), 0);
    json_t *again = json_loads(text_of(r, &err), 0, NULL);
    want = openapi_tool_to_json(openapi_catalog_find(cat, third ? third : ""));
    CHECK(json_equal(json_array_get(again, 0), want));
    for (size_t i = 1; i < json_array_size(again); i++) /* not twice */
        CHECK_STR(
            json_string_value(json_object_get(json_array_get(again, i), "name")) == NULL ||
                    strcmp(json_string_value(json_object_get(json_array_get(again, i), "name")),
                           third ? third : "") != 0
                ? "other"
                : "twice",
            "other");
    json_decref(want);
    json_decref(again);
    json_decref(hits);
    json_decref(r);
    json_decref(args);

    CHECK_INT(dcall(d, "search_operations", "{\"query\":\"zebra\"}", &r, &tool, &ta, &args), 0);
    CHECK_STR(text_of(r, &err), "no operation matches \"zebra\"; try other keywords");
    CHECK(!err);
    json_decref(r);
    json_decref(args);

    CHECK_INT(
        dcall(d, "search_operations", "{\"query\":\"pet\",\"limit\":11}", &r, &tool, &ta, &args),
        0);
    CHECK_STR(text_of(r, &err), "the limit of search_operations must be an integer from 1 to 10");
    CHECK(err);
    json_decref(r);
    json_decref(args);

    CHECK_INT(dcall(d, "call_operation", "{\"name\":\"nope\"}", &r, &tool, &ta, &args), 0);
    CHECK_STR(text_of(r, &err), "unknown operation \"nope\"; call search_operations to find its "
                                "name");
    json_decref(r);
    json_decref(args);

    CHECK_INT(dcall(d, "call_operation", "{\"name\":\"list_pets\"}", &r, &tool, &ta, &args), 0);
    CHECK(r == NULL && tool == openapi_catalog_find(cat, "list_pets") && ta == NULL);
    json_decref(args);

    CHECK_INT(dcall(d, "list_categories", NULL, &r, &tool, &ta, &args), ERR_NOTFOUND);

    openapi_discovery_free(d);
    openapi_catalog_unref(cat);
}

TEST_MAIN(TEST(test_bm25), TEST(test_bm25_fields), TEST(test_title_api), TEST(test_mode_tool_sets),
          TEST(test_hierarchical), TEST(test_list_operations_pages), TEST(test_search))
