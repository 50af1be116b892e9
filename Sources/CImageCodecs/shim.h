#include <stdio.h>
#include <stddef.h>
#include <jpeglib.h>
#include <png.h>
#include <turbojpeg.h>
