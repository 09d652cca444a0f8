# The tutorial's produzent.py (shared/seed/), for bench/run's scenario 5.
# Lines changed for the benchmark end in "# bench:" comments; see
# bench/RESULTS.md, "Scenario 5", for the list and the reasons.
import cv2, time
import os  # bench: broker, topic and loop from the environment

from kafka import KafkaProducer  # bench: SimpleProducer, KafkaClient are gone from kafka-python 2.x


def video_producer(video_file):
    producer = KafkaProducer(bootstrap_servers=os.environ['KAFKA_BROKERS'].split(','))  # bench: was KafkaClient('localhost:9092'), SimpleProducer(kafka)
    topic = os.environ.get('TOPIC', 'dbtech')  # bench: was 'dbtech'
    captured = cv2.VideoCapture(video_file)
    next_frame = time.monotonic()  # bench: 25 fps pacing

    while (captured.isOpened()):
        read_correctly, frame = captured.read()
        if read_correctly:
            return_value, image = cv2.imencode('.png', frame)
            producer.send(topic, image.tobytes()).get()  # bench: was send_messages(); .get() waits for the ack as SimpleProducer did
            next_frame += 1 / 25  # bench: 25 fps instead of time.sleep(0.25)
            time.sleep(max(0.0, next_frame - time.monotonic()))  # bench
        else:
            break
    captured.release()


if __name__ == '__main__':
    while True:  # bench: the video in a loop, as kafka-stream-producer -l
        video_producer(os.environ.get('VIDEO', 'video.mp4'))  # bench: was 'video.mp4'
