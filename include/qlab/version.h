#ifndef QLAB_VERSION_H
#define QLAB_VERSION_H
#define QLAB_VERSION "0.1.0"
#endif
