/* The smallest useful app: a statically linked program in a FROM scratch image. */
#include <stdio.h>

int main(void) {
    puts("Hello from baseforge!");
    return 0;
}
