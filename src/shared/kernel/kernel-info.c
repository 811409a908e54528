#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "kernel-import.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

KernelInfo *kernel_info_free(KernelInfo *info)
{
        if (!info)
                return NULL;
        free(info->name);
        free(info->version);
        free(info->source);
        free(info->digest);
        strv_free(info->formats);
        strv_free(info->modules);
        free(info);
        return NULL;
}

static inline void json_object_putp(json_object **o)
{
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ __attribute__((cleanup(json_object_putp)))

static json_object *json_string_array(char *const *l)
{
        json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        for (char *const *i = l; i && *i; i++)
                if (json_object_array_add(a, json_object_new_string(*i)) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        return a;
}

int kernel_info_to_json(const KernelInfo *info, char **ret)
{
        _cleanup_json_ json_object *o = json_object_new_object();
        const char *text;
        char *copy;

        if (!o)
                return -ENOMEM;

        if (json_object_object_add(o, "name", json_object_new_string(strempty(info->name))) < 0 ||
            json_object_object_add(o, "version", json_object_new_string(strempty(info->version))) <
                    0 ||
            json_object_object_add(o, "source", json_object_new_string(strempty(info->source))) <
                    0 ||
            json_object_object_add(o, "digest", json_object_new_string(strempty(info->digest))) <
                    0 ||
            json_object_object_add(o, "has_initrd", json_object_new_boolean(info->has_initrd)) <
                    0 ||
            json_object_object_add(o, "formats", json_string_array(info->formats)) < 0 ||
            json_object_object_add(o, "modules", json_string_array(info->modules)) < 0 ||
            json_object_object_add(o, "created_usec", json_object_new_uint64(info->created_usec)) <
                    0)
                return -ENOMEM;

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        copy = strdup(text);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int json_get_string(json_object *o, const char *key, bool required, char **ret)
{
        json_object *v;
        char *copy;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (required) {
                        log_debug("Kernel record has no '%s'", key);
                        return -EBADMSG;
                }
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string)) {
                log_debug("Kernel record field '%s' is not a string", key);
                return -EBADMSG;
        }
        copy = strdup(json_object_get_string(v));
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int json_get_strv(json_object *o, const char *key, char ***ret)
{
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        json_object *v;
        size_t n;
        int r;

        if (!l)
                return -ENOMEM;
        if (!json_object_object_get_ex(o, key, &v)) {
                *ret = TAKE_PTR(l);
                return 0;
        }
        if (!json_object_is_type(v, json_type_array)) {
                log_debug("Kernel record field '%s' is not an array", key);
                return -EBADMSG;
        }

        n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++) {
                json_object *item = json_object_array_get_idx(v, i);

                if (!json_object_is_type(item, json_type_string)) {
                        log_debug("Kernel record field '%s' has a non-string item", key);
                        return -EBADMSG;
                }
                r = strv_extend(&l, json_object_get_string(item));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int kernel_info_from_object(json_object *o, KernelInfo *info)
{
        json_object *v;
        int r;

        r = json_get_string(o, "name", true, &info->name);
        if (r < 0)
                return r;
        r = json_get_string(o, "version", true, &info->version);
        if (r < 0)
                return r;
        r = json_get_string(o, "source", false, &info->source);
        if (r < 0)
                return r;
        r = json_get_string(o, "digest", true, &info->digest);
        if (r < 0)
                return r;
        r = json_get_strv(o, "formats", &info->formats);
        if (r < 0)
                return r;
        r = json_get_strv(o, "modules", &info->modules);
        if (r < 0)
                return r;

        if (json_object_object_get_ex(o, "has_initrd", &v)) {
                if (!json_object_is_type(v, json_type_boolean))
                        return -EBADMSG;
                info->has_initrd = json_object_get_boolean(v);
        }
        if (json_object_object_get_ex(o, "created_usec", &v)) {
                if (!json_object_is_type(v, json_type_int))
                        return -EBADMSG;
                info->created_usec = json_object_get_uint64(v);
        }
        return 0;
}

int kernel_info_from_json(const char *json, KernelInfo **ret)
{
        _cleanup_(kernel_info_freep) KernelInfo *info = NULL;
        _cleanup_json_ json_object *o = NULL;
        enum json_tokener_error error;
        int r;

        o = json_tokener_parse_verbose(json, &error);
        if (!o) {
                log_debug("Kernel record is not valid JSON: %s", json_tokener_error_desc(error));
                return -EBADMSG;
        }
        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;

        info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        r = kernel_info_from_object(o, info);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(info);
        return 0;
}
