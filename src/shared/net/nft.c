#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "nft.h"

#define BRIDGE_NAME_MAX 15
#define COMMENT         "banger"
#define SLOT_COMMENT    "banger slot "

/* The rules banger inserts into base chains of iptables-nft's "ip filter" table. They use only
 * expressions that iptables-nft translates back (-i, -o, -p, --dport, -m comment), so that
 * iptables and programs built on it, such as Docker, can still read and change those chains.
 * %1$s is the bridge. */
static const struct {
        const char *chain;
        const char *rule;
} foreign_rules[] = {
        { "FORWARD", "iifname \"%1$s\" accept" },
        { "FORWARD", "oifname \"%1$s\" accept" },
        { "INPUT", "iifname \"%1$s\" udp dport 53 accept" },
        { "INPUT", "iifname \"%1$s\" tcp dport 53 accept" },
        { "INPUT", "iifname \"%1$s\" meta l4proto icmp accept" },
};

/* One rule of a listing: where it is and, for a port forward, what it forwards. */
typedef struct NftRule {
        char chain[32];
        int64_t handle;
        bool is_forward;
        NftForward forward;
} NftRule;

static inline void nft_ctx_freep(struct nft_ctx **ctx)
{
        if (*ctx)
                nft_ctx_free(*ctx);
}

static inline void json_object_putp(json_object **o)
{
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

/* Maps the text that libnftables reports to an errno: it quotes the kernel's strerror(). */
static int error_from_message(const char *message)
{
        static const int known[] = { ENOENT, EEXIST, EPERM,      EACCES,       EBUSY,
                                     ENOMEM, ENOSPC, EOPNOTSUPP, EAFNOSUPPORT, EPROTONOSUPPORT };

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (strstr(message, strerror(known[i])))
                        return -known[i];
        if (strstr(message, "syntax error"))
                return -EINVAL;
        return -EIO;
}

/* Runs the nft commands in text as one transaction. With ret, the output is requested as JSON
 * with handles and returned parsed. */
static int nft_run(const char *text, json_object **ret)
{
        _cleanup_(nft_ctx_freep) struct nft_ctx *ctx = NULL;
        enum json_tokener_error error;
        json_object *output;
        const char *json_text;

        ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!ctx)
                return -ENOMEM;
        if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)
                return -ENOMEM;
        if (ret)
                nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);

        if (nft_run_cmd_from_buffer(ctx, text) != 0) {
                /* Each get_*_buffer() call rewinds the buffer, so it is read once. */
                const char *message = nft_ctx_get_error_buffer(ctx);

                log_debug("nft commands failed: %s", strempty(message));
                return error_from_message(strempty(message));
        }

        if (!ret)
                return 0;

        json_text = nft_ctx_get_output_buffer(ctx);
        output = json_tokener_parse_verbose(strempty(json_text), &error);
        if (!output) {
                log_debug("Failed to parse nft JSON output: %s", json_tokener_error_desc(error));
                return -EBADMSG;
        }

        *ret = output;
        return 0;
}

/* The array of objects in nft's JSON output, or NULL. */
static json_object *listing_items(json_object *listing)
{
        json_object *items;

        if (!json_object_object_get_ex(listing, "nftables", &items) ||
            !json_object_is_type(items, json_type_array))
                return NULL;
        return items;
}

/* Returns the object that item has under key (e.g. "rule" or "chain"), or NULL. */
static json_object *item_get(json_object *item, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(item, key, &v) || !json_object_is_type(v, json_type_object))
                return NULL;
        return v;
}

static const char *member_string(json_object *o, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool member_int(json_object *o, const char *key, int64_t *ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;

        *ret = json_object_get_int64(v);
        return true;
}

/* Lists table family/name; *ret is NULL when the table does not exist. */
static int list_table(const char *family, const char *name, json_object **ret)
{
        _cleanup_free_ char *text = NULL;
        int r;

        if (asprintf(&text, "list table %s %s", family, name) < 0)
                return -ENOMEM;

        r = nft_run(text, ret);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        return r;
}

static bool parse_slot(const char *comment, unsigned *ret)
{
        const char *s;
        unsigned long v;
        char *end;

        if (!comment || !strneq(comment, SLOT_COMMENT, strlen(SLOT_COMMENT)))
                return false;

        s = comment + strlen(SLOT_COMMENT);
        if (*s < '0' || *s > '9')
                return false;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0' || v > UINT32_MAX)
                return false;

        *ret = (unsigned)v;
        return true;
}

/* Reads "tcp dport N" from a match expression. */
static bool parse_port_match(json_object *match, NftForward *f)
{
        json_object *left, *payload;
        const char *proto, *field;
        int64_t port;

        if (!json_object_object_get_ex(match, "left", &left))
                return false;
        payload = item_get(left, "payload");
        if (!payload)
                return false;

        proto = member_string(payload, "protocol");
        field = member_string(payload, "field");
        if (!proto || !field || !streq(field, "dport"))
                return false;
        if (!streq(proto, "tcp") && !streq(proto, "udp"))
                return false;
        if (!member_int(match, "right", &port) || port <= 0 || port > UINT16_MAX)
                return false;

        snprintf(f->proto, sizeof(f->proto), "%s", proto);
        f->host_port = (uint16_t)port;
        return true;
}

static bool parse_dnat(json_object *dnat, NftForward *f)
{
        const char *addr;
        int64_t port;

        addr = member_string(dnat, "addr");
        if (!addr || ipv4_addr_parse(addr, &f->guest_addr) < 0)
                return false;
        if (!member_int(dnat, "port", &port) || port <= 0 || port > UINT16_MAX)
                return false;

        f->guest_port = (uint16_t)port;
        return true;
}

/* Fills f from a rule that banger added for a port forward; false for any other rule. */
static bool parse_forward(json_object *rule, NftForward *f)
{
        bool have_port = false, have_dnat = false;
        json_object *exprs;

        *f = (NftForward){ .slot = 0 };
        if (!parse_slot(member_string(rule, "comment"), &f->slot))
                return false;
        if (!json_object_object_get_ex(rule, "expr", &exprs) ||
            !json_object_is_type(exprs, json_type_array))
                return false;

        for (size_t i = 0; i < json_object_array_length(exprs); i++) {
                json_object *e = json_object_array_get_idx(exprs, i), *v;

                v = item_get(e, "match");
                if (v && parse_port_match(v, f))
                        have_port = true;
                v = item_get(e, "dnat");
                if (v && parse_dnat(v, f))
                        have_dnat = true;
        }

        return have_port && have_dnat;
}

/* Collects the rules of a table listing, parsing port forwards on the way. */
static int collect_rules(json_object *listing, NftRule **ret, size_t *ret_n)
{
        _cleanup_free_ NftRule *rules = NULL;
        json_object *items = listing_items(listing);
        size_t n = 0;

        for (size_t i = 0; items && i < json_object_array_length(items); i++) {
                json_object *rule = item_get(json_object_array_get_idx(items, i), "rule");
                const char *chain;
                NftRule *p;
                int64_t handle;

                if (!rule)
                        continue;
                chain = member_string(rule, "chain");
                if (!chain || !member_int(rule, "handle", &handle))
                        continue;

                p = reallocarray(rules, n + 1, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                rules = p;

                rules[n] = (NftRule){ .handle = handle };
                snprintf(rules[n].chain, sizeof(rules[n].chain), "%s", chain);
                rules[n].is_forward = parse_forward(rule, &rules[n].forward);
                n++;
        }

        *ret = TAKE_PTR(rules);
        *ret_n = n;
        return 0;
}

static int banger_rules(NftRule **ret, size_t *ret_n)
{
        _cleanup_json_ json_object *listing = NULL;
        int r;

        r = list_table("inet", "banger", &listing);
        if (r < 0)
                return r;
        if (!listing) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }

        return collect_rules(listing, ret, ret_n);
}

static bool bridge_name_is_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > BRIDGE_NAME_MAX)
                return false;

        /* The name is quoted in nft's command language, so it is kept to plain characters. */
        for (const char *p = name; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
                            *p))
                        return false;
        return true;
}

/* Writes commands that delete banger's rules from the base chains FORWARD and INPUT of
 * iptables-nft's table, and with bridge also insert them anew. Writes nothing when the table or
 * chains are missing. */
static int write_foreign_rules(FILE *f, const char *bridge)
{
        _cleanup_json_ json_object *listing = NULL;
        json_object *items;
        int r;

        r = list_table("ip", "filter", &listing);
        if (r < 0)
                return r;
        items = listing_items(listing);

        for (size_t i = 0; items && i < json_object_array_length(items); i++) {
                json_object *item = json_object_array_get_idx(items, i), *o;
                const char *chain, *comment;
                int64_t handle;

                o = item_get(item, "rule");
                if (!o)
                        continue;
                chain = member_string(o, "chain");
                comment = member_string(o, "comment");
                if (!chain || !comment || !streq(comment, COMMENT) ||
                    !member_int(o, "handle", &handle))
                        continue;
                if (!streq(chain, "FORWARD") && !streq(chain, "INPUT"))
                        continue;

                fprintf(f, "delete rule ip filter %s handle %" PRIi64 "\n", chain, handle);
        }

        for (size_t i = 0; bridge && items && i < json_object_array_length(items); i++) {
                json_object *o = item_get(json_object_array_get_idx(items, i), "chain");
                const char *name;

                /* Only base chains filter traffic: a regular chain of the same name does not. */
                if (!o || !json_object_object_get_ex(o, "hook", NULL))
                        continue;
                name = member_string(o, "name");
                if (!name)
                        continue;

                for (size_t j = 0; j < ELEMENTSOF(foreign_rules); j++) {
                        if (!streq(name, foreign_rules[j].chain))
                                continue;

                        fprintf(f, "insert rule ip filter %s ", name);
                        fprintf(f, foreign_rules[j].rule, bridge);
                        fprintf(f, " comment \"" COMMENT "\"\n");
                }
        }

        return 0;
}

/* Writes the commands that create banger's chains, none of which fail when they exist. */
static void write_chains(FILE *f)
{
        fputs("add table inet banger\n"
              "add chain inet banger postrouting "
              "{ type nat hook postrouting priority srcnat; policy accept; }\n"
              "add chain inet banger prerouting "
              "{ type nat hook prerouting priority dstnat; policy accept; }\n"
              "add chain inet banger output "
              "{ type nat hook output priority -100; policy accept; }\n"
              "add chain inet banger forward "
              "{ type filter hook forward priority filter; policy accept; }\n"
              "add chain inet banger input "
              "{ type filter hook input priority filter; policy accept; }\n",
              f);
}

/* Writes banger's masquerade, forward and input rules after flushing their chains. Port
 * forwards live in prerouting and output and are left alone. */
static void write_base_rules(FILE *f, const char *bridge, const char *net)
{
        fputs("flush chain inet banger postrouting\n"
              "flush chain inet banger forward\n"
              "flush chain inet banger input\n",
              f);

        fprintf(f,
                "add rule inet banger postrouting ip saddr %2$s ip daddr != %2$s masquerade "
                "comment \"" COMMENT "\"\n"
                /* Forwards reached from 127.0.0.1 need a source address the guest can reply to. */
                "add rule inet banger postrouting ip saddr 127.0.0.0/8 oifname \"%1$s\" "
                "masquerade comment \"" COMMENT "\"\n"
                "add rule inet banger forward iifname \"%1$s\" accept comment \"" COMMENT "\"\n"
                "add rule inet banger forward oifname \"%1$s\" ct state established,related "
                "accept comment \"" COMMENT "\"\n"
                "add rule inet banger forward oifname \"%1$s\" ct status dnat accept "
                "comment \"" COMMENT "\"\n"
                /* The foreign FORWARD chain accepts everything bound for the bridge, because
                 * iptables-nft cannot read conntrack matches, so the filtering is done here. */
                "add rule inet banger forward oifname \"%1$s\" drop comment \"" COMMENT "\"\n"
                "add rule inet banger input iifname \"%1$s\" udp dport 53 accept "
                "comment \"" COMMENT "\"\n"
                "add rule inet banger input iifname \"%1$s\" tcp dport 53 accept "
                "comment \"" COMMENT "\"\n"
                "add rule inet banger input iifname \"%1$s\" meta l4proto icmp accept "
                "comment \"" COMMENT "\"\n",
                bridge, net);
}

/* Flushes f and runs the commands written into buf, its memory stream buffer. */
static int run_written(FILE *f, char **buf)
{
        if (fflush(f) != 0 || ferror(f))
                return -ENOMEM;
        return nft_run(*buf, NULL);
}

int nft_ensure_base(const char *bridge, const Ipv4Net *net)
{
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char net_text[IPV4_FORMAT_MAX];
        size_t size;
        int r;

        assert(net);

        if (!bridge_name_is_valid(bridge))
                return -EINVAL;
        if (net->prefix > 32 || (net->addr & ~ipv4_prefix_mask(net->prefix)) != 0)
                return -EINVAL;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        ipv4_format(net->addr, net->prefix, true, net_text);
        write_chains(f);
        write_base_rules(f, bridge, net_text);
        r = write_foreign_rules(f, bridge);
        if (r < 0)
                return r;

        return run_written(f, &buf);
}

static bool proto_is_valid(const char *proto)
{
        return proto && (streq(proto, "tcp") || streq(proto, "udp"));
}

static bool forward_matches(const NftRule *rule, const char *proto, uint16_t host_port)
{
        return rule->is_forward && streq(rule->forward.proto, proto) &&
               rule->forward.host_port == host_port;
}

int nft_add_forward(const NftForward *fw)
{
        _cleanup_free_ NftRule *rules = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char guest[IPV4_FORMAT_MAX];
        size_t n, size;
        int r;

        assert(fw);

        if (!proto_is_valid(fw->proto) || fw->host_port == 0 || fw->guest_port == 0 ||
            fw->guest_addr == 0)
                return -EINVAL;

        r = banger_rules(&rules, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (forward_matches(&rules[i], fw->proto, fw->host_port))
                        return -EADDRINUSE;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        /* fib daddr type local limits the forward to the host's own addresses, so traffic that
         * is only routed through the host keeps its destination. */
        ipv4_format(fw->guest_addr, 32, false, guest);
        for (size_t i = 0; i < 2; i++)
                fprintf(f,
                        "add rule inet banger %s fib daddr type local %s dport %u "
                        "dnat ip to %s:%u comment \"" SLOT_COMMENT "%u\"\n",
                        i == 0 ? "prerouting" : "output", fw->proto, fw->host_port, guest,
                        fw->guest_port, fw->slot);

        return run_written(f, &buf);
}

/* Deletes the forward rules for which remove() is true. Returns how many forwards went, counting
 * a rule in prerouting and its twin in output as one. */
static int remove_forwards_where(bool (*remove)(const NftRule *rule, const void *userdata),
                                 const void *userdata)
{
        _cleanup_free_ NftRule *rules = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t n, size;
        int removed = 0, r;

        r = banger_rules(&rules, &n);
        if (r < 0)
                return r;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        for (size_t i = 0; i < n; i++) {
                if (!rules[i].is_forward || !remove(&rules[i], userdata))
                        continue;

                fprintf(f, "delete rule inet banger %s handle %" PRIi64 "\n", rules[i].chain,
                        rules[i].handle);
                if (streq(rules[i].chain, "prerouting"))
                        removed++;
        }

        if (ftell(f) == 0)
                return 0;

        r = run_written(f, &buf);
        return r < 0 ? r : removed;
}

typedef struct PortKey {
        const char *proto;
        uint16_t port;
} PortKey;

static bool rule_has_port(const NftRule *rule, const void *userdata)
{
        const PortKey *key = userdata;

        return forward_matches(rule, key->proto, key->port);
}

int nft_remove_forward(const char *proto, uint16_t host_port)
{
        PortKey key = { .proto = proto, .port = host_port };
        int r;

        if (!proto_is_valid(proto) || host_port == 0)
                return -EINVAL;

        r = remove_forwards_where(rule_has_port, &key);
        if (r < 0)
                return r;
        return r == 0 ? -ENOENT : 0;
}

typedef struct SlotSet {
        const unsigned *slots;
        size_t n;
} SlotSet;

static bool rule_slot_is_dead(const NftRule *rule, const void *userdata)
{
        const SlotSet *live = userdata;

        for (size_t i = 0; i < live->n; i++)
                if (live->slots[i] == rule->forward.slot)
                        return false;
        return true;
}

int nft_remove_forwards_except(const unsigned *live_slots, size_t n)
{
        SlotSet live = { .slots = live_slots, .n = n };

        assert(live_slots || n == 0);

        return remove_forwards_where(rule_slot_is_dead, &live);
}

int nft_list_forwards(NftForward **ret, size_t *ret_n)
{
        _cleanup_free_ NftRule *rules = NULL;
        _cleanup_free_ NftForward *forwards = NULL;
        size_t n, k = 0;
        int r;

        assert(ret);
        assert(ret_n);

        r = banger_rules(&rules, &n);
        if (r < 0)
                return r;

        forwards = calloc(n > 0 ? n : 1, sizeof(*forwards));
        if (!forwards)
                return -ENOMEM;

        /* Each forward has a rule in prerouting and its twin in output. */
        for (size_t i = 0; i < n; i++)
                if (rules[i].is_forward && streq(rules[i].chain, "prerouting"))
                        forwards[k++] = rules[i].forward;

        *ret = TAKE_PTR(forwards);
        *ret_n = k;
        return 0;
}

int nft_remove_all(void)
{
        _cleanup_json_ json_object *listing = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t size;
        int r;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        r = write_foreign_rules(f, NULL);
        if (r < 0)
                return r;

        r = list_table("inet", "banger", &listing);
        if (r < 0)
                return r;
        if (listing)
                fputs("delete table inet banger\n", f);

        if (ftell(f) == 0)
                return 0;
        return run_written(f, &buf);
}
