/* stock.so: the hooks shipped with trapeze, named stock.NAME in a config:
 *   stock.check_redis  check_redis.c
 *   stock.wait_tcp, stock.wait_http, stock.wait_file  wait.c
 * This file declares the plugin, once for the whole shared object. */
#include <trapeze/hook.h>

TRAPEZE_PLUGIN();
