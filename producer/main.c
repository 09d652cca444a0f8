#include <stdio.h>
int main(void) { puts("usage: kafka-stream-producer [options] INPUT..."); return 0; }
