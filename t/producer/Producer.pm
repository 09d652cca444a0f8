package Producer;

# Helpers for the producer's tests: run build/kafka-stream-producer with a
# deadline, read the message headers, and look inside the images (PNG IHDR
# and first pixel, JPEG SOF) without any image library.

use strict;
use warnings;

use Compress::Zlib qw(uncompress);
use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use IPC::Run qw(start finish timeout);
use Time::HiRes qw(time sleep);

our @EXPORT = qw(producer_bin run_producer start_producer finish_producer
                 header headers_of png_info png_first_pixel jpeg_info
                 ffprobe_frames median poll_until send_and_consume);

my $Repo = abs_path(dirname(__FILE__) . '/../..');


sub producer_bin {
    for my $dir ($ENV{TEST_NGINX_KAFKA_BIN}, "$Repo/build") {
        my $bin = defined $dir ? "$dir/kafka-stream-producer" : undef;
        return $bin if defined $bin && -x $bin;
    }
    die "kafka-stream-producer not found: run make\n";
}


# starts the producer; returns a handle for finish_producer
sub start_producer {
    my (@args) = @_;
    my $h = { out => '', err => '', started => time };
    $h->{run} = start([producer_bin(), @args], '<', \undef,
                      '>', \$h->{out}, '2>', \$h->{err},
                      timeout(60));
    return $h;
}


# waits for the producer; returns { rc, signal, out, err, elapsed }
sub finish_producer {
    my ($h) = @_;
    eval { finish($h->{run}) };
    if ($@) {
        $h->{run}->kill_kill;
        die "kafka-stream-producer did not finish: $@";
    }
    my $status = $h->{run}->full_result;
    return { rc => $status >> 8, signal => $status & 127,
             out => $h->{out}, err => $h->{err},
             elapsed => time - $h->{started} };
}


sub run_producer {
    return finish_producer(start_producer(@_));
}


# runs the producer with -b BROKERS -t TOPIC ARGS..., checks that it exits
# 0 and that TOPIC then holds COUNT messages; returns them
sub send_and_consume {
    my ($brokers, $topic, $count, @args) = @_;
    my $r = run_producer('-b', $brokers, '-t', $topic, @args);
    Test::More::is($r->{rc}, 0, "exit 0")
        or Test::More::diag($r->{err});
    my @m = KafkaStream::Test::consume($topic);
    Test::More::is(scalar @m, $count, "$count messages");
    return @m;
}


# the value of header NAME of a message from consume()
sub header {
    my ($msg, $name) = @_;
    my @h = @{$msg->{headers}};
    for (my $i = 0; $i < @h; $i += 2) {
        return $h[$i + 1] if $h[$i] eq $name;
    }
    return undef;
}


sub headers_of {
    my ($msg) = @_;
    my @h = @{$msg->{headers}};
    my %h;
    for (my $i = 0; $i < @h; $i += 2) {
        $h{$h[$i]} = $h[$i + 1];
    }
    return \%h;
}


# { width, height, depth, color } from a PNG's IHDR, or undef
sub png_info {
    my ($data) = @_;
    return undef if length($data) < 33
        || substr($data, 0, 8) ne "\x89PNG\r\n\x1a\n"
        || substr($data, 12, 4) ne 'IHDR';
    my ($w, $h, $depth, $color) = unpack 'N N C C', substr($data, 16, 10);
    # a whole PNG ends with an IEND chunk
    return undef if substr($data, -8, 4) ne 'IEND';
    return { width => $w, height => $h, depth => $depth, color => $color };
}


# [r, g, b] of the top-left pixel of an 8-bit RGB PNG: in the first row
# every PNG filter leaves the first pixel's bytes as they are
sub png_first_pixel {
    my ($data) = @_;
    my ($pos, $idat) = (8, '');
    while ($pos + 8 <= length $data) {
        my ($len, $type) = unpack 'N a4', substr($data, $pos, 8);
        $idat .= substr($data, $pos + 8, $len) if $type eq 'IDAT';
        $pos += 12 + $len;
    }
    my $raw = uncompress($idat);
    return undef if !defined $raw || length $raw < 4;
    return [unpack 'C3', substr($raw, 1, 3)];
}


# { width, height } from a JPEG's start-of-frame marker, or undef
sub jpeg_info {
    my ($data) = @_;
    return undef if substr($data, 0, 2) ne "\xff\xd8"
        || substr($data, -2) ne "\xff\xd9";
    my $pos = 2;
    while ($pos + 4 <= length $data) {
        my ($ff, $marker, $len) = unpack 'C C n', substr($data, $pos, 4);
        return undef if $ff != 0xff;
        if ($marker >= 0xc0 && $marker <= 0xcf
            && $marker != 0xc4 && $marker != 0xc8 && $marker != 0xcc)
        {
            my ($h, $w) = unpack 'n n', substr($data, $pos + 5, 4);
            return { width => $w, height => $h };
        }
        $pos += 2 + $len;
    }
    return undef;
}


# the number of video frames ffprobe decodes from PATH
sub ffprobe_frames {
    my ($path) = @_;
    my $n = `ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 '$path'`;
    chomp $n;
    return $n;
}


sub median {
    my @v = sort { $a <=> $b } @_;
    return undef if !@v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}


# calls COND until it returns true or TIMEOUT seconds pass; returns its value
sub poll_until {
    my ($timeout, $cond) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $v = $cond->();
        return $v if $v || time > $deadline;
        sleep 0.1;
    }
}

1;
